"""Fake devices that speak the real wire formats (NMEA GPS, SIM800 modem) on pseudo-terminals."""
