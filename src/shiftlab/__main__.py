"""`python -m shiftlab` runs the `shiftlab` command."""

import sys

from shiftlab.cli import main

sys.exit(main())
