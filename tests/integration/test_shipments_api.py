"""Logistics uploads shipped-unit manifests over HTTP: the real service on 127.0.0.1, SQLite
and PostgreSQL. All-or-nothing unless ``skip_bad``, idempotent, refusals audited only."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import ServedBackend, seed_line

CSV = (
    "serial,work_order,ship_date,carton,pallet,destination\n"
    "BRT000001,WO-1,2026-11-26,C1,P1,Lyon\n"
    "BRT000002,WO-1,2026-11-26,C1,P1,Lyon\n"
)
BAD = CSV + "BRT000003,WO-1,not-a-date,C1,P1,Lyon\n"


@pytest.fixture(autouse=True)
def _line(served: ServedBackend) -> None:
    seed_line(served, station_id="st-ship", work_order_id="WO-1")


def rows(served: ServedBackend, table: str) -> int:
    with served.backend.engine.connect() as conn:
        where = " WHERE event <> 'operator.action'" if table == "audit_events" else ""
        # (the record of the operator's authorized request is not the action's own)
        return int(conn.execute(text(f"SELECT count(*) FROM {table}{where}")).scalar_one())  # noqa: S608


def post(served: ServedBackend, body: str, **params: str) -> httpx.Response:
    return httpx.post(
        f"{served.url}/v1/shipments",
        content=body.encode(),
        params=params,
        headers={"content-type": "text/csv", **served.auth},
    )


def test_a_csv_manifest_imports_once_and_again_adds_nothing(served: ServedBackend) -> None:
    first = post(served, CSV)
    assert first.status_code == 200, first.text
    assert (first.json()["added"], first.json()["already_present"]) == (2, 0)
    again = post(served, CSV)
    assert (again.json()["added"], again.json()["already_present"]) == (0, 2)
    assert rows(served, "shipments") == 2


def test_a_manifest_with_a_bad_row_imports_nothing_and_names_the_line(
    served: ServedBackend,
) -> None:
    audits = rows(served, "audit_events")
    r = post(served, BAD)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "manifest_rows_invalid"
    assert "line 4" in r.json()["message"]
    assert rows(served, "shipments") == 0
    assert rows(served, "audit_events") == audits + 1


def test_skip_bad_imports_the_good_rows_and_reports_the_bad(served: ServedBackend) -> None:
    r = post(served, BAD, skip_bad="true")
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 2
    assert [row["line"] for row in r.json()["skipped"]] == [4]


def test_a_json_manifest_imports(served: ServedBackend) -> None:
    body = [
        {"serial": "BRT000009", "work_order": "WO-1", "ship_date": "2026-11-26",
         "carton": "C9", "pallet": "P9", "destination": "Porto"},
    ]  # fmt: skip
    r = httpx.post(
        f"{served.url}/v1/shipments", params={"format": "json"}, json=body, headers=served.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 1


def test_a_body_that_is_not_a_manifest_is_a_clear_400_and_writes_only_audit(
    served: ServedBackend,
) -> None:
    audits = rows(served, "audit_events")
    r = httpx.post(
        f"{served.url}/v1/shipments",
        params={"format": "json"},
        content=b"{not json",
        headers=served.auth,
    )
    assert r.status_code == 400, r.text
    assert set(json.loads(r.text)) >= {"code", "message"}
    assert rows(served, "shipments") == 0
    assert rows(served, "audit_events") == audits + 1
