"""Binds tools.feature."""

from pytest_bdd import scenarios

scenarios("tools.feature")
