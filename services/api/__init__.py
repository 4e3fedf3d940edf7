"""The HTTP API (FastAPI): catalog, readings, dead letters, metrics; later alerts, SSE and the UI."""
