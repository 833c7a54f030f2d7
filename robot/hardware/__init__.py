"""Hardware interfaces shared by the Pi drivers and their simulated twins."""
