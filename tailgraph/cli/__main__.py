"""``python -m tailgraph.cli``: the ``tailgraph`` command."""

import sys

from tailgraph.cli import main

sys.exit(main())
