"""``python -m otelres.health``: the same as ``otelres health`` (the seed ran its checker as a module)."""

import sys

from otelres._cli import main

sys.exit(main(["health", *sys.argv[1:]]))
