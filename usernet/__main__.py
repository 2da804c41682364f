"""`python -m usernet [options] script.py|-m module [args]` runs an unmodified asyncio program on usernet.

The `usernet` command (`usernet up`, `ping`, `run`, ...) is `usernet.cli`.
"""

import sys

from usernet.aio.runner import main

sys.exit(main())
