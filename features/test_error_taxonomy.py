"""Binds error_taxonomy.feature."""

from pytest_bdd import scenarios

scenarios("error_taxonomy.feature")
