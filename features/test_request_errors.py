"""Binds request_errors.feature."""

from pytest_bdd import scenarios

scenarios("request_errors.feature")
