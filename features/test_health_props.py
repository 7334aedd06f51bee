"""Binds health_props.feature."""

from pytest_bdd import scenarios

scenarios("health_props.feature")
