"""`python -m optrepro.tasks TASK [driver options]`: the driver of any registered task (what the runner runs).

`python -m optrepro.tasks parity --benchmark n32-k8 ...` is `python -m optrepro.tasks.parity --benchmark n32-k8
...`; a task registered from outside the package (OPTREPRO_TASKS) has only this form.
"""

import sys

from . import get, names
from .cli import main

if len(sys.argv) < 2 or sys.argv[1] not in names():
    print(f"usage: python -m optrepro.tasks TASK [--help | driver options]; TASK one of {', '.join(names())}",
          file=sys.stderr)
    sys.exit(2)
sys.exit(main(get(sys.argv[1]).load_driver(), sys.argv[2:]))
