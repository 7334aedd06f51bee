"""Binds cancel.feature."""

from pytest_bdd import scenarios

scenarios("cancel.feature")
