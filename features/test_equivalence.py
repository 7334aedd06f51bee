"""Binds equivalence.feature."""

from pytest_bdd import scenarios

scenarios("equivalence.feature")
