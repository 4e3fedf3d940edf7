"""Alerting: the streaming evaluator on its own broker session, writing and publishing alerts."""
