"""The HTML morning report in headless Chromium, served over real HTTP on 127.0.0.1.

A day with thousands of exceptions: the page must show the key figures (read from the DOM),
keep the long list collapsed into pages, offer every serial as a CSV download, and draw the
units minted per hour per line. A screenshot lands in the test's tmp dir.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from birthright.db.engine import make_sessionmaker
from birthright.db.reconcile import ReconcileStore
from birthright.reconcile.manifests import parse_shipments
from tests.conftest import ServedBackend
from tests.integration.test_reconcile import Line, line, manifest

__all__ = ["line"]  # the fixture, used by name
CHROMIUM = "/usr/bin/chromium"
GHOSTS = 2500


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing (Debian package chromium)")
        pytest.skip("Chromium is missing (Debian package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--disable-gpu", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_the_report_page_reads_well_with_thousands_of_exceptions(
    browser: Browser, line: Line, served: ServedBackend, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    enrolled = [line.enroll(f"CHIP-{i}") for i in range(3)]
    rows = [(enrolled[0], "C1")] + [(f"BRT-GHOST-{i:05d}", "C2") for i in range(GHOSTS)]
    parsed = parse_shipments(io.BytesIO(manifest(rows, today.isoformat()).encode()))
    ReconcileStore(make_sessionmaker(served.backend.engine)).import_shipments(
        parsed, source_sha256="b" * 64, skip_bad=False, now=datetime.now(UTC)
    )
    served.backend.reports.generate(today, ["json", "html"], trigger="cli")

    page = browser.new_page(viewport={"width": 1280, "height": 900}, extra_http_headers=served.auth)
    try:
        response = page.goto(f"{served.url}/v1/reports/{today.isoformat()}/html")
        assert response is not None and response.status == 200
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000

        def figure(name: str) -> str:
            return page.locator(f'[data-figure="{name}"]').inner_text()

        assert figure("minted") == "3"
        assert figure("shipped") == str(1 + GHOSTS)
        assert figure("enrolled_not_shipped") == "2"
        assert figure("shipped_not_enrolled") == str(GHOSTS)
        assert figure("foreign_chip") == "3"  # no delivery list imported: every chip is foreign
        assert (
            page.locator("#verdict").inner_text()
            == f"{2 + GHOSTS + 3} exception(s) need attention."
        )

        # Thousands of serials: ten collapsed pages of 100, the rest in the CSV download.
        section = page.locator("#shipped_not_enrolled")
        assert section.locator("details").count() == 10
        assert section.locator("details[open]").count() == 0
        assert section.locator("tbody tr").first.is_visible() is False
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 5000, f"the page is {height}px tall: long lists must stay collapsed"
        section.locator("summary").first.click()
        assert section.locator("tbody tr").first.inner_text().startswith("BRT-GHOST-00000")
        assert page.locator("#enrolled_not_shipped tbody tr").count() == 2

        href = section.locator("a.download").get_attribute("href")
        assert href == "exceptions/shipped_not_enrolled.csv"
        with page.expect_download() as download:  # a person clicking the link
            section.locator("a.download").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == f"{today.isoformat()}-shipped_not_enrolled.csv"
        assert len(saved.read_text().strip().splitlines()) == GHOSTS + 1

        chart = page.locator('figure.chart[data-line="site1/line1"]')
        assert chart.locator("figcaption").inner_text() == "site1/line1: 3 minted"
        assert chart.locator("svg rect").count() == 24  # one bar per hour of the day
    finally:
        page.close()
