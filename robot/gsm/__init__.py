"""GSM part of the robot: SMS status alerts out, SMS commands in from trusted numbers (SIM800 modem)."""
