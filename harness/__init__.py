"""The harness: the CLI, the pytest plugin, checks and the determinism suite."""
