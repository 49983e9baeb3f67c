"""``python -m stackcheck``: the same as the ``stackcheck`` command."""

import sys

from stackcheck.cli import main

sys.exit(main())
