"""``python -m planhat_pipelines.cli``: the same command line as ``planhat-pipelines``."""

import sys

from planhat_pipelines.cli import main

sys.exit(main())
