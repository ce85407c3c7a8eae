"""``python -m landexplorer.cli``: the same as the ``landexplorer`` command."""

import sys

from landexplorer.cli import main

sys.exit(main())
