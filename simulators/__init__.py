"""Simulated gateways that speak only PROTOCOL.md, as a real gateway would."""
