"""`python -m optrepro.tasks.parity`: see driver.py."""

import sys

from .driver import main

sys.exit(main())
