"""``python -m otelres``: the ``otelres`` command."""

import sys

from otelres._cli import main

sys.exit(main())
