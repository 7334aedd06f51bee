"""Binds stop.feature."""

from pytest_bdd import scenarios

scenarios("stop.feature")
