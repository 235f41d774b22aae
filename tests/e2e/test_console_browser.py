"""The operator console in headless Chromium over real HTTP on 127.0.0.1: each role logs in
and sees exactly its pages and actions, forbidden POSTs get 403, a change without its CSRF
token is refused, a bad password is refused and audited, and a production manager runs a
recall (preview, then confirm). Screenshots land in test-artifacts/console/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from birthright.db.audit import list_events
from birthright.operators.roles import Role
from tests.conftest import ServedBackend, seed_line
from tests.e2e.test_report_browser import browser
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_revocation_api import make_unit

__all__ = ["browser"]  # the fixture, used by name
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PASSWORD = "console test passphrase"

#: role -> (name, nav links it must see, nav links it must not see)
ROLES = {
    Role.ADMIN: ("ada", {"Overview", "Devices", "Work orders", "Reports", "Recall",
                         "Audit log", "Operators"}, set()),
    Role.PRODUCTION_MANAGER: ("pim", {"Overview", "Devices", "Work orders", "Reports", "Recall"},
                              {"Audit log", "Operators"}),
    Role.AUDITOR: ("aud", {"Overview", "Devices", "Work orders", "Reports", "Audit log"},
                   {"Recall", "Operators"}),
    Role.LINE_OPERATOR: ("lin", {"Overview", "Devices"},
                         {"Work orders", "Reports", "Recall", "Audit log", "Operators"}),
}  # fmt: skip
PAGES = {
    "Work orders": "/console/work-orders",
    "Reports": "/console/reports",
    "Recall": "/console/recall",
    "Audit log": "/console/audit",
    "Operators": "/console/operators",
}


@dataclass(frozen=True)
class Factory:
    served: ServedBackend
    serials: list[str]

    @property
    def url(self) -> str:
        return self.served.url


@pytest.fixture
def factory(served: ServedBackend) -> Factory:
    """A line with one work order, three units on it, one other line, and one operator of
    each role (the line operator on site1/line1)."""
    seed_line(served, station_id=STATION, work_order_id=WO, quantity=4)
    seed_line(served, station_id="st-other", work_order_id="WO-OTHER", line="line2")
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as api:
        serials = [make_unit(api, f"CHIP-CONSOLE-{i}").serial for i in range(3)]
    for role, (name, _see, _hidden) in ROLES.items():
        line = ("site1", "line1") if role is Role.LINE_OPERATOR else (None, None)
        served.backend.operators.create(name, role, PASSWORD, site=line[0], line=line[1])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return Factory(served, serials)


def log_in(browser: Browser, factory: Factory, name: str, password: str = PASSWORD) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{factory.url}/console")
    expect(page).to_have_url(f"{factory.url}/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return page


def csrf_of(page: Page) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


@pytest.mark.parametrize("role", list(ROLES), ids=[r.value for r in ROLES])
def test_each_role_sees_exactly_its_pages(browser: Browser, factory: Factory, role: Role) -> None:
    name, visible, hidden = ROLES[role]
    page = log_in(browser, factory, name)
    expect(page.get_by_test_id("whoami")).to_contain_text(role.value)
    nav = set(page.locator("header nav a").all_inner_texts())
    assert visible <= nav and not hidden & nav, nav
    expect(page.get_by_test_id("quota-chart")).to_be_visible()
    stations = page.get_by_test_id("stations").inner_text()
    assert STATION in stations
    assert ("st-other" in stations) is (role is not Role.LINE_OPERATOR)
    page.screenshot(path=str(ARTIFACTS / f"overview-{role.value}.png"), full_page=True)
    for label in hidden:
        response = page.goto(factory.url + PAGES[label])
        assert response is not None and response.status == 403, label
        expect(page.get_by_test_id("error")).to_contain_text("operator_forbidden")
    page.goto(f"{factory.url}/console/devices?q={factory.serials[0]}")
    expect(page.get_by_test_id("device-status")).to_have_text("active")
    revoke = page.get_by_test_id("revoke-form")
    expect(revoke).to_have_count(1 if role in (Role.ADMIN, Role.PRODUCTION_MANAGER) else 0)
    page.screenshot(path=str(ARTIFACTS / f"device-{role.value}.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.LINE_OPERATOR], ids=lambda r: r.value)
def test_forbidden_changes_are_403_even_with_a_valid_csrf_token(
    browser: Browser, factory: Factory, role: Role
) -> None:
    page = log_in(browser, factory, ROLES[role][0])
    token = csrf_of(page)
    serial = factory.serials[0]
    form: dict[str, str | float | bool] = {"csrf_token": token, "reason": "keyCompromise"}
    console = page.request.post(f"{factory.url}/console/devices/{serial}/revoke", form=form)
    assert console.status == 403
    api = page.request.post(
        f"{factory.url}/v1/revocations",
        data={"serial": serial, "reason": "keyCompromise"},
        headers={"X-CSRF-Token": token},
    )
    assert (api.status, api.json()["code"]) == (403, "operator_forbidden")
    assert factory.served.backend.revocation.status(serial)[0].status == "active"
    refused = list_events(factory.served.backend.sessions, event="operator.action", limit=2)
    assert {e.outcome for e in refused} == {"refused"}
    page.close()


def test_a_change_without_its_csrf_token_is_refused(browser: Browser, factory: Factory) -> None:
    page = log_in(browser, factory, "ada")
    serial = factory.serials[0]
    forms: list[dict[str, str | float | bool]] = [
        {"reason": "keyCompromise"},
        {"csrf_token": "0" * 64},
    ]
    for form in forms:
        r = page.request.post(f"{factory.url}/console/devices/{serial}/revoke", form=form)
        assert r.status == 403 and "csrf_invalid" in r.text()
    api = page.request.post(
        f"{factory.url}/v1/revocations", data={"serial": serial, "reason": "keyCompromise"}
    )
    assert (api.status, api.json()["code"]) == (403, "csrf_invalid")
    assert factory.served.backend.revocation.status(serial)[0].status == "active"
    [event] = list_events(factory.served.backend.sessions, event="operator.request", limit=1)
    assert (event.outcome, event.code) == ("refused", "csrf_invalid")
    page.close()


def test_a_bad_password_is_refused_and_audited(browser: Browser, factory: Factory) -> None:
    page = log_in(browser, factory, "ada", password="not the passphrase")
    expect(page.get_by_test_id("login-error")).to_contain_text("operator_login_failed")
    page.screenshot(path=str(ARTIFACTS / "login-refused.png"))
    [event] = list_events(factory.served.backend.sessions, event="operator.login", limit=1)
    assert (event.outcome, event.code) == ("refused", "operator_login_failed")
    assert page.context.cookies() == []
    page.close()


def test_a_production_manager_previews_then_confirms_a_recall(
    browser: Browser, factory: Factory
) -> None:
    page = log_in(browser, factory, "pim")
    page.click("header nav a:text('Recall')")
    page.fill("input[name=work_order_id]", WO)
    page.select_option("select[name=reason]", "certificateHold")
    page.click("[data-testid=recall-form] button[type=submit]")
    expect(page.get_by_test_id("recall-count")).to_have_text("3")
    page.screenshot(path=str(ARTIFACTS / "recall-preview.png"), full_page=True)
    assert {factory.served.backend.revocation.status(s)[0].status for s in factory.serials} == {
        "active"
    }  # a preview changes nothing
    page.get_by_test_id("recall-confirm").click()
    expect(page.get_by_test_id("recall-done")).to_contain_text("3 unit(s) revoked")
    page.screenshot(path=str(ARTIFACTS / "recall-confirmed.png"), full_page=True)
    statuses = {factory.served.backend.revocation.status(s)[0].status for s in factory.serials}
    assert statuses == {"on_hold"}
    actions = list_events(factory.served.backend.sessions, event="operator.action", limit=10)
    assert {(e.outcome, "pim" in e.detail) for e in actions} == {("ok", True)}
    page.goto(f"{factory.url}/console/devices?q={factory.serials[0]}")
    expect(page.get_by_test_id("revocation")).to_contain_text("certificateHold")
    page.close()


def test_an_admin_reads_the_audit_chain_and_manages_operators(
    browser: Browser, factory: Factory
) -> None:
    page = log_in(browser, factory, "ada")
    page.click("header nav a:text('Audit log')")
    expect(page.get_by_test_id("chain-status")).to_contain_text("intact")
    expect(page.get_by_test_id("audit-events")).to_contain_text("operator.login")
    page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)
    page.click("header nav a:text('Operators')")
    form = page.get_by_test_id("add-operator")
    form.locator("input[name=name]").fill("newbie")
    form.locator("select[name=role]").select_option("auditor")
    form.locator("input[name=password]").fill("a fresh auditor passphrase")
    form.locator("button[type=submit]").click()
    expect(page.get_by_test_id("operators")).to_contain_text("newbie")
    page.screenshot(path=str(ARTIFACTS / "operators.png"), full_page=True)
    page.click("header nav a:text('Work orders')")
    page.screenshot(path=str(ARTIFACTS / "work-orders.png"), full_page=True)
    page.click("text=Log out")
    expect(page).to_have_url(f"{factory.url}/console/login")
    assert page.request.get(f"{factory.url}/v1/reports").status == 401  # the session is gone
    page.close()


def test_a_production_day_from_the_console(browser: Browser, factory: Factory) -> None:
    """Open a work order, hold and resume it, reconcile the day and read the signed report:
    a production manager needs nothing but the console."""
    page = log_in(browser, factory, "pim")
    page.click("header nav a:text('Work orders')")
    form = page.get_by_test_id("open-work-order")
    for name, value in {
        "work_order_id": "WO-DAY-2", "product": "BR-TEST", "site": "site1", "line": "line1",
        "quantity": "50", "serial_prefix": "BRD", "serial_first": "1", "serial_last": "100",
    }.items():  # fmt: skip
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    row = page.get_by_test_id("work-orders").locator("tr", has_text="WO-DAY-2")
    expect(row).to_contain_text("open")
    row.locator("button:text('Suspend')").click()
    expect(page.get_by_test_id("work-orders").locator("tr", has_text="WO-DAY-2")).to_contain_text(
        "suspended"
    )
    page.get_by_test_id("work-orders").locator("tr", has_text="WO-DAY-2").locator(
        "button:text('Resume')"
    ).click()
    resumed = page.get_by_test_id("work-orders").locator("tr", has_text="WO-DAY-2")
    expect(resumed.locator(".badge")).to_have_text("open")
    page.screenshot(path=str(ARTIFACTS / "work-orders-day.png"), full_page=True)
    page.click("header nav a:text('Reports')")
    page.get_by_test_id("generate-report").locator("button").click()
    expect(page.get_by_test_id("reports")).to_contain_text("console")
    page.screenshot(path=str(ARTIFACTS / "reports.png"), full_page=True)
    page.get_by_test_id("reports").locator("tr", has_text="html").locator(
        "a:text('open')"
    ).first.click()  # the API's report, read with the console session
    expect(page.locator("body")).to_contain_text("WO-TEST")
    page.screenshot(path=str(ARTIFACTS / "report-from-console.png"))
    page.close()
