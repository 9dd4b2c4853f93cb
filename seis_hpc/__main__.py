"""``python -m seis_hpc`` is the ``seis-hpc`` command."""

import sys

from seis_hpc.cli import main

sys.exit(main())
