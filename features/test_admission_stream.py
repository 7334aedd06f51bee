"""Binds admission_stream.feature."""

from pytest_bdd import scenarios

scenarios("admission_stream.feature")
