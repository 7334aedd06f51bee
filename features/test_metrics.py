"""Binds metrics.feature."""

from pytest_bdd import scenarios

scenarios("metrics.feature")
