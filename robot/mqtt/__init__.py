"""The robot on an MQTT broker: telemetry, alerts and commands, Home Assistant discovery, a disk spool."""
