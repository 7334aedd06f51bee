"""Binds openai_compat.feature."""

from pytest_bdd import scenarios

scenarios("openai_compat.feature")
