"""Binds usage.feature."""

from pytest_bdd import scenarios

scenarios("usage.feature")
