"""An enterprise login sees only its own sites: on the board, in the site filter and the site list;
another enterprise's site page and alert page are not found."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import StackHandle, unique
from tests.ui.conftest import Ui, raised_alert, red_site


def test_an_enterprise_login_sees_only_its_own_sites(stack: StackHandle, ui: Ui) -> None:
    ours_ent, theirs_ent = unique("ENT-OURS"), unique("ENT-THEIRS")
    ours, theirs = red_site(stack, "OURS", enterprise=ours_ent), red_site(stack, "THEIRS", enterprise=theirs_ent)
    our_alert, their_alert = raised_alert(stack, ours), raised_alert(stack, theirs)

    admin = ui.page(stack.token)
    ui.open_board(admin)  # the admin sees both
    expect(admin.locator(f"tr.alert-row[data-id='{our_alert['id']}']")).to_have_count(1)
    expect(admin.locator(f"tr.alert-row[data-id='{their_alert['id']}']")).to_have_count(1)

    page = ui.page(stack.token_for("enterprise", "--enterprise", ours_ent, "--name", "金岭调度"))
    expect(page.locator("header.top .who .name")).to_have_text("金岭调度")
    expect(page.locator("header.top .who .role")).to_have_text("企业")
    ui.open_board(page)
    expect(page.locator("tr.alert-row")).to_have_count(1)
    expect(page.locator("tr.alert-row")).to_have_attribute("data-id", our_alert["id"])
    options = page.locator("select.filter-site option")
    expect(options).to_have_count(2)  # "all" and ours
    assert options.nth(1).get_attribute("value") == ours

    ui.go(page, "#/sites")
    expect(page.locator("a.site-card")).to_have_count(1)
    expect(page.locator("a.site-card")).to_have_attribute("data-site", ours)

    ui.go(page, f"#/sites/{theirs}")
    expect(page.locator("section.not-found")).to_be_visible()
    ui.go(page, f"#/alerts/{their_alert['id']}")
    expect(page.locator("section.not-found")).to_be_visible()
    ui.go(page, f"#/sites/{ours}")
    expect(page.locator(f"section.site-page[data-site='{ours}']")).to_be_visible()
    ui.go(page, f"#/alerts/{our_alert['id']}")
    expect(page.locator(f"section.alert-page[data-id='{our_alert['id']}']")).to_be_visible()


def test_a_bad_token_stays_on_the_login_page(stack: StackHandle, ui: Ui) -> None:
    page = ui.page()
    page.goto(f"{stack.api}/")  # redirected to the UI, which asks for a token
    expect(page).to_have_url(f"{stack.api}/ui/#/login")
    page.fill("input.token", "sw_not-a-token")
    page.click("button.submit")
    expect(page.locator("form.login p.error")).to_have_text("令牌无效或已吊销")
    assert page.evaluate("localStorage.getItem('sw.token')") is None
