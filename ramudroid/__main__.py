"""`python -m ramudroid`: the same as the `ramudroid` console script."""

import sys

from ramudroid.cli import main

sys.exit(main())
