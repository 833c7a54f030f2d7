"""The Arduino bridge: wire protocol codec, serial link, simulated Arduino, and the firmware build."""
