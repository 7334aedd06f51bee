"""Binds logprobs.feature."""

from pytest_bdd import scenarios

scenarios("logprobs.feature")
