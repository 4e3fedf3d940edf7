"""Handling through the UI: acknowledge, handle (a disposition is required) and close from the
board and from the alert page; the board follows, the API has the history; a refused step shows
the server's reason."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.conftest import StackHandle
from tests.ui.conftest import Ui, alert_json, raised_alert, red_site


def confirm_step(page: Page, action: str, *, by: str | None = None, note: str | None = None) -> None:
    dialog = page.locator(f"dialog.step-dialog.step-{action}")
    expect(dialog).to_be_visible()
    if by is not None:
        dialog.locator("input.by").fill(by)
    if note is not None:
        dialog.locator("textarea.note").fill(note)
    dialog.locator("button.confirm").click()


def alert_on_board(stack: StackHandle, ui: Ui) -> tuple[dict[str, Any], Page, Locator]:
    """A new red alert, and its row on an open board."""
    alert = raised_alert(stack, red_site(stack, "UIH"))
    page = ui.page(stack.token)
    ui.open_board(page)
    row = page.locator(f"tr.alert-row[data-id='{alert['id']}']")
    expect(row).to_have_attribute("data-state", "open")
    return alert, page, row


def test_acknowledge_handle_and_close_from_the_board(stack: StackHandle, ui: Ui) -> None:
    alert, page, row = alert_on_board(stack, ui)

    row.locator("button.step-acknowledge").click()
    confirm_step(page, "acknowledge", by="张调度", note="已通知现场")
    expect(row).to_have_attribute("data-state", "acknowledged")
    expect(row.locator("td.state")).to_contain_text("已签收")

    row.locator("button.step-handle").click()
    confirm_step(page, "handle", by="张调度")  # no disposition: refused here, nothing sent
    dialog = page.locator("dialog.step-handle")
    expect(dialog.locator("p.error")).to_have_text("请填写处置意见")
    expect(dialog).to_be_visible()
    assert alert_json(stack, alert["id"])["state"] == "acknowledged"
    dialog.locator("textarea.note").fill("停泵排查，泄漏点已封堵")
    dialog.locator("button.confirm").click()
    expect(dialog).to_have_count(0)
    expect(row).to_have_attribute("data-state", "handled")

    row.locator("button.step-close").click()
    confirm_step(page, "close", by="李值班", note="复测正常")
    expect(row).to_have_count(0)  # a closed alert leaves the board

    done = alert_json(stack, alert["id"])
    assert done["state"] == "closed" and done["closed_at"]
    assert [(h["action"], h["by"], h["note"]) for h in done["history"]] == [
        ("raise", "evaluator", done["history"][0]["note"]),
        ("acknowledge", "张调度", "已通知现场"),
        ("handle", "张调度", "停泵排查，泄漏点已封堵"),
        ("close", "李值班", "复测正常"),
    ]


def test_handling_from_the_alert_page_and_a_refused_step_shows_the_servers_reason(stack: StackHandle, ui: Ui) -> None:
    alert, _board, row = alert_on_board(stack, ui)
    page = ui.page(stack.token)
    ui.go(page, f"#/alerts/{alert['id']}")
    head = page.locator("header.alert-head")
    expect(head.locator(".state")).to_have_text("未签收")
    head.locator("button.step-acknowledge").click()
    expect(page.locator("dialog.step-acknowledge")).to_be_visible()
    with stack.http() as c:  # someone else is quicker
        assert c.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"by": "王值班"}).status_code == 200
    page.locator("dialog.step-acknowledge button.confirm").click()
    error = page.locator("dialog.step-acknowledge p.error")
    expect(error).to_have_text("the alert is already acknowledged")
    page.locator("dialog.step-acknowledge button.cancel").click()
    expect(head.locator(".state")).to_have_text("已签收")  # the stream brought the other's step
    expect(row).to_have_attribute("data-state", "acknowledged")  # and the other tab's board too

    head.locator("button.step-handle").click()
    confirm_step(page, "handle", by="赵班长", note="更换探头")
    expect(page.locator("header.alert-head .state")).to_have_text("已处置")
    expect(row).to_have_attribute("data-state", "handled")
    page.locator("header.alert-head button.step-close").click()
    confirm_step(page, "close")
    expect(page.locator("header.alert-head .state")).to_have_text("已销号")
    expect(page.locator("ol.history li")).to_have_count(4)
    expect(page.locator("ol.history li.step-handle .note")).to_have_text("更换探头")
    expect(row).to_have_count(0)
    assert alert_json(stack, alert["id"])["state"] == "closed"
