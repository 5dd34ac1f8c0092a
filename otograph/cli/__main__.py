"""``python -m otograph.cli``."""

import sys

from otograph.cli.main import main

sys.exit(main())
