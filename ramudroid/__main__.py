"""`python -m ramudroid`: the same as the `ramudroid` console script."""

import sys

from ramudroid.accel import console_main

sys.exit(console_main())
