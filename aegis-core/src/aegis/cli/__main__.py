"""``python -m aegis.cli``."""

import sys

from aegis.cli import main

sys.exit(main())
