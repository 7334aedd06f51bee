"""Binds sampling.feature."""

from pytest_bdd import scenarios

scenarios("sampling.feature")
