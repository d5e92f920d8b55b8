"""``python -m vizoflow``."""

import sys

from vizoflow.cli import main

sys.exit(main())
