"""Binds auth.feature."""

from pytest_bdd import scenarios

scenarios("auth.feature")
