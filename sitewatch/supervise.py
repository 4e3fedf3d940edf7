"""The embedded stack's watchdog: `stack up` starts it, `stack down` stops it first.

Every half second it takes the data dir's lock and starts again whatever `up` started and has
died since (a service killed with SIGKILL, a crashed broker or PostgreSQL), except what `stack
down NAME` stopped on purpose. A component that keeps dying is retried with a growing delay (up
to 30 s), so a service that cannot start does not spin. Production deployments leave this to their
own supervisor (systemd, or compose's `restart: unless-stopped`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from sitewatch.stack import Stack

log = logging.getLogger("sitewatch.supervise")

POLL_S = 0.5
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 10.0  # a component that ran this long before dying is restarted at once


def _reap_children() -> None:
    """The supervisor is the parent of what it restarted: collect those that exited."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
            log.warning("process %d exited with %s", pid, how)


class Supervisor:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._started_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._not_before = 0.0

    def round(self) -> list[str]:
        """Restart what is dead; the names restarted."""
        now = time.monotonic()
        if now < self._not_before:
            return []
        try:
            started = Stack(self.data_dir).heal()
        except Exception as exc:  # the watchdog must outlive any one failure
            log.error("restart failed: %s", exc)
            self._not_before = now + self._backoff("stack")
            return []
        for name, pid in started:
            log.warning("%s was not running (pid %s): restarted it", name, pid)
            ran = now - self._started_at.get(name, float("-inf"))
            self._delay[name] = BACKOFF_MIN_S if ran >= STABLE_S else self._backoff(name)
            self._started_at[name] = now
            if ran < STABLE_S:
                self._not_before = max(self._not_before, now + self._delay[name])
        return [name for name, _pid in started]

    def _backoff(self, name: str) -> float:
        self._delay[name] = min(BACKOFF_MAX_S, 2 * self._delay.get(name, BACKOFF_MIN_S / 2))
        return self._delay[name]

    def run(self) -> None:
        stop = False

        def on_term(_signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        log.info("supervising the stack in %s (pid %d)", self.data_dir, os.getpid())
        while not stop:
            _reap_children()
            self.round()
            time.sleep(POLL_S)
        log.info("stopped")


def main(data_dir: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Supervisor(data_dir.resolve()).run()
