"""``python -m conform``: the same command line as the ``conform`` script."""

from conform.harness.cli import main

raise SystemExit(main())
