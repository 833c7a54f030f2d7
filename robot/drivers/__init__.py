"""Real Raspberry Pi drivers for each part, their simulated twins, and the hardware CLI commands."""
