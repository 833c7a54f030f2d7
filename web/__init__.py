"""The operator dashboard: a FastAPI app that reads the published telemetry and queues operator commands."""
