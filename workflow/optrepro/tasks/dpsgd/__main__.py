"""`python -m optrepro.tasks.dpsgd`: see driver.py."""

import sys

from .driver import main

sys.exit(main())
