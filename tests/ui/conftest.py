"""Browser fixtures: Debian's chromium driven by Playwright (launched by its executable path:
no browser is ever downloaded), one browser per session against the session's stack, a fresh
context per page, JavaScript errors failing the test that caused them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

from simulators.gateway import Gateway
from tests.conftest import StackHandle, site_catalog, unique

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WALL = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
RED_RULE = {"rule": "threshold", "above": [50], "severities": [4]}

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-system-deps.sh --test (make test does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Ui:
    """Opens logged-in pages of the stack's UI and collects what went wrong in them."""

    stack: StackHandle
    browser: Browser
    errors: list[str] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def page(self, token: str | None = None, *, viewport: dict[str, int] = WALL, lang: str | None = None) -> Page:
        context = self.browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="America/Los_Angeles")
        self.contexts.append(context)
        if lang:
            context.add_init_script(f"localStorage.setItem('sw.lang', {lang!r})")
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda msg: self._console(page, msg))
        if token is not None:
            self.login(page, token)
        return page

    def _console(self, page: Page, msg: ConsoleMessage) -> None:
        # Refused requests (a 404 page, a 409 step) are logged by the browser and shown by the UI.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(f"{page.url}: console: {msg.text}")

    def login(self, page: Page, token: str) -> None:
        page.goto(f"{self.stack.api}/ui/#/login")
        page.fill("input.token", token)
        page.click("button.submit")
        expect(page.locator("header.top .who .name")).to_be_visible()
        expect(page.locator("#view[data-route=board] section.board")).to_be_visible()

    def open_board(self, page: Page) -> None:
        """The board loaded and the stream live: from here on, only events change it."""
        page.goto(f"{self.stack.api}/ui/#/board")
        expect(page.locator("#view[data-loaded='1']")).to_be_attached()
        expect(page.locator("header.top .live.on")).to_be_attached()

    def go(self, page: Page, route: str) -> None:
        page.evaluate("route => { location.hash = route }", route)

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Error):  # already closed with its browser
                context.close()


@pytest.fixture
def ui(stack: StackHandle, browser: Browser) -> Iterator[Ui]:
    handle = Ui(stack, browser)
    try:
        yield handle
    finally:
        handle.close()
    assert not handle.errors, "JavaScript errors in the UI:\n" + "\n".join(handle.errors)


def now_ms() -> int:
    return int(time.time() * 1000)


def red_site(
    stack: StackHandle,
    prefix: str,
    *,
    enterprise: str | None = None,
    points: int = 1,
    rule: dict[str, Any] = RED_RULE,
) -> str:
    """A site whose points P0.. raise a red alert above 50, or as `rule` says (and never go
    offline during a test), of its own enterprise unless one is given."""
    site = unique(prefix)
    doc = site_catalog(site, enterprise=enterprise or unique("ENT-UI"), points=points)
    for point in doc["points"]:
        point.update(period_s=3600, unit="%LEL", name=f"{point['code']} 可燃气体", rules=[rule])
    assert stack.load_catalog(doc).status_code == 200
    return site


def gateway(stack: StackHandle, site: str, password: str = "gw-secret-1") -> Gateway:
    """The site's gateway GW-1, numbering its messages from the clock (as PROTOCOL advises a
    gateway without a stored counter): a reconnected gateway's first message is no redelivery."""
    return stack.gateway(site, "GW-1", password, client_id=unique("gw"), first_seq=time.time_ns() // 1000)


def publish(stack: StackHandle, site: str, readings: list[dict[str, Any]]) -> None:
    gw = gateway(stack, site)
    try:
        gw.flush([gw.telemetry(readings)])
    finally:
        gw.close()


def wait_for(fetch: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Poll the API until `predicate(fetch())` holds (for state the UI does not show)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met; last value: {value}")
        time.sleep(0.1)


def raised_alert(stack: StackHandle, site: str, value: float = 70.0, point: str = "P0") -> dict[str, Any]:
    """Publish a reading over the threshold and return the stored alert."""
    publish(stack, site, [{"point": point, "ts": now_ms(), "value": value}])
    with stack.http() as c:

        def listed() -> list[dict[str, Any]]:
            return list(c.get("/api/v1/alerts", params={"site": site}).json()["alerts"])

        return dict(wait_for(listed, lambda alerts: len(alerts) == 1)[0])


def alert_json(stack: StackHandle, alert_id: str) -> dict[str, Any]:
    with stack.http() as c:
        return dict(c.get(f"/api/v1/alerts/{alert_id}").json())
