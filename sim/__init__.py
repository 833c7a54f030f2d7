"""The simulator: the robot's world on a virtual clock, fake devices, scenarios and reports."""
