"""Binds load.feature."""

from pytest_bdd import scenarios

scenarios("load.feature")
