"""`python -m optrepro.tasks.bilevel`: see driver.py."""

import sys

from .driver import main

sys.exit(main())
