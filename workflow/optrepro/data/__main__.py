"""`python -m optrepro.data fetch|pin ...`: see sources.py."""

import sys

from .sources import main

sys.exit(main())
