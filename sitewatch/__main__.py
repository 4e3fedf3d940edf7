"""`python -m sitewatch` is the `sitewatch` command (how `stack up` starts the demo simulators)."""

from sitewatch.cli import app

app()
