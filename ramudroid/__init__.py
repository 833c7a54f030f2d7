"""The composition root: wires the robot's parts, the Arduino link, the simulator and the dashboard together."""
