"""``python -m fusion_utils.experiments run|status|collect ...``: the grid's command line."""

import sys

from fusion_utils.experiments.cli import main

sys.exit(main())
