"""Binds determinism.feature."""

from pytest_bdd import scenarios

scenarios("determinism.feature")
