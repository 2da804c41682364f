"""`python -m usernet` runs the command line."""

import sys

from usernet.cli import main

sys.exit(main())
