"""Operators suspend, resume and revoke stations; the service enforces it at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from birthright.errors import ConflictError
from tests.conftest import ServedBackend, seed_line

STATION, WO = "st-status", "WO-STATUS"


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield client


def reserve(api: httpx.Client, chip: str) -> httpx.Response:
    return api.post(
        "/v1/serials", json={"station_id": STATION, "work_order_id": WO, "chip_id": chip}
    )


def test_a_suspended_station_is_refused_until_resumed(
    api: httpx.Client, served: ServedBackend
) -> None:
    ops = served.backend.operations
    ops.set_station_status(STATION, "suspended", reason="audit", now=datetime.now(UTC))
    r = reserve(api, "C1")
    assert (r.status_code, r.json()["code"]) == (403, "station_suspended")
    ops.set_station_status(STATION, "active", reason="cleared", now=datetime.now(UTC))
    assert reserve(api, "C1").status_code == 200


def test_a_revoked_station_is_refused_and_cannot_be_resumed(
    api: httpx.Client, served: ServedBackend
) -> None:
    ops = served.backend.operations
    ops.set_station_status(STATION, "revoked", reason="stolen", now=datetime.now(UTC))
    r = reserve(api, "C1")
    assert (r.status_code, r.json()["code"]) == (403, "station_revoked")
    with pytest.raises(ConflictError) as caught:
        ops.set_station_status(STATION, "active", reason="oops", now=datetime.now(UTC))
    assert caught.value.code == "station_revoked"
    assert [a["kind"] for a in ops.alerts()] == ["enrollment.station_revoked"]
