"""Benchmarks, run on demand (`python -m benchmarks`), never as timed tests.

Each measures our figure and the alternative a user would pick *in the same
run*, and prints the ratio next to the target.
"""
