"""Binds llamaswap_management.feature."""

from pytest_bdd import scenarios

scenarios("llamaswap_management.feature")
