"""``python -m vosapp.cli ...``: the same as the ``vosapp`` console script."""

import sys

from vosapp.cli import main

sys.exit(main())
