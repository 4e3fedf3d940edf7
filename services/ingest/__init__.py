"""Ingest: MQTT telemetry and positions into PostgreSQL, lossless and exactly once."""
