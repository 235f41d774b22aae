"""The reconciliation's set queries: every form (index merge, probe per row, PostgreSQL's one
merge full join) finds exactly the same exceptions on the same data, edge cases included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from birthright.db import reconcile_sets as sets
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.models import (
    ChipDeliveryRow,
    DeviceRow,
    ShipmentRow,
    StationRow,
    WorkOrderRow,
)
from birthright.db.reconcile_queries import Window, compute_figures
from birthright.reconcile.report import Exception_

DAY = date(2026, 11, 26)
NOON = datetime(2026, 11, 26, 12, tzinfo=UTC)
BEFORE = datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
AFTER = datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC)

# serial: (enrolled at or None, chip delivered?), shipments as (work order, ship date)
DEVICES: dict[str, tuple[datetime, bool]] = {
    "S01": (NOON, True),  # shipped on the day: nothing to say
    "S02": (NOON, True),  # enrolled on the day, never shipped
    "S03": (BEFORE, True),  # enrolled the day before, never shipped (all time only)
    "S04": (NOON, True),  # shipped another day: shipped, so not missing
    "S05": (NOON, False),  # foreign chip on the day
    "S06": (AFTER, False),  # foreign chip the next day (all time only)
    "S07": (NOON, True),  # shipped twice, once on the day
    "S08": (BEFORE, True),  # shipped twice, neither on the day (all time only)
    "S09": (datetime(2026, 11, 26, 0, 0, tzinfo=UTC), True),  # first instant of the day
    "S10": (datetime(2026, 11, 26, 23, 30, tzinfo=UTC), False),  # last hour, foreign, unshipped
}
SHIPMENTS: list[tuple[str, str, date]] = [
    ("S01", "WO-B", DAY),
    ("S04", "WO-A", DAY - timedelta(days=3)),
    ("S05", "WO-A", DAY),
    ("S06", "WO-A", DAY + timedelta(days=1)),
    ("S07", "WO-B", DAY),
    ("S07", "WO-A", DAY - timedelta(days=1)),
    ("S08", "WO-A", DAY - timedelta(days=2)),
    ("S08", "WO-B", DAY - timedelta(days=1)),
    ("S09", "WO-A", DAY),
    # never enrolled: twice on the day under two orders and once before under a third
    ("X01", "WO-C", DAY),
    ("X01", "WO-B", DAY),
    ("X01", "WO-A", DAY - timedelta(days=5)),
    ("X02", "WO-B", DAY - timedelta(days=1)),  # never enrolled, another day (all time only)
    ("X03", "WO-C", DAY),  # never enrolled, on the day
]
ORDER_OF = {"S01": "WO-B", "S02": "WO-A", "S03": "WO-B", "S07": "WO-C", "S10": "WO-C"}


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    _seed(engine)
    with make_sessionmaker(engine)() as s:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET LOCAL enable_hashjoin = off"))
        yield s
    engine.dispose()


def _seed(engine: Any) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(StationRow),
            [{"station_id": "st", "site": "s", "line": "l", "status": "active", "created_at": at}],
        )
        conn.execute(
            insert(WorkOrderRow),
            [
                {
                    "work_order_id": wo,
                    "product": "P",
                    "site": "site1",
                    "line": f"line{i}",
                    "quantity": 10,
                    "serial_prefix": "S",
                    "serial_first": 1,
                    "serial_last": 10,
                    "next_serial": 1,
                    "minted": 0,
                    "status": "open",
                    "valid_from": at,
                    "valid_until": at + timedelta(days=720),
                    "created_at": at,
                    "updated_at": at,
                }
                for i, wo in enumerate(("WO-A", "WO-B", "WO-C"))
            ],
        )
        conn.execute(
            insert(DeviceRow),
            [
                {
                    "serial": serial,
                    "chip_id": f"CHIP-{serial}",
                    "key_fingerprint": f"{i:064x}",
                    "public_key_der": b"\x00",
                    "cert_serial": f"{i:x}",
                    "cert_der": b"\x00",
                    "product": "P",
                    "station_id": "st",
                    "work_order_id": ORDER_OF.get(serial, "WO-A"),
                    "status": "active",
                    "enrolled_at": enrolled_at,
                }
                for i, (serial, (enrolled_at, _)) in enumerate(DEVICES.items())
            ],
        )
        conn.execute(
            insert(ShipmentRow),
            [
                {
                    "serial": serial,
                    "work_order_id": wo,
                    "ship_date": shipped,
                    "carton": f"C{i}",
                    "pallet": "P",
                    "destination": "Rotterdam",
                    "source_sha256": "f" * 64,
                    "source_line": i,
                    "imported_at": at,
                }
                for i, (serial, wo, shipped) in enumerate(SHIPMENTS)
            ],
        )
        conn.execute(
            insert(ChipDeliveryRow),
            [
                {
                    "chip_id": f"CHIP-{serial}",
                    "vendor": "V",
                    "delivered_at": at,
                    "source_sha256": "f" * 64,
                    "imported_at": at,
                }
                for serial, (_, delivered) in DEVICES.items()
                if delivered
            ]
            + [  # a delivered chip nobody enrolled says nothing
                {
                    "chip_id": "CHIP-SPARE",
                    "vendor": "V",
                    "delivered_at": at,
                    "source_sha256": "f" * 64,
                    "imported_at": at,
                }
            ],
        )


def _e(kind: str, serial: str, wo: str | None, detail: str = "") -> Exception_:
    return Exception_(kind, serial, wo, detail)


EXPECTED: dict[date | None, dict[str, list[Exception_]]] = {
    DAY: {
        "enrolled_not_shipped": [
            _e("enrolled_not_shipped", "S02", "WO-A"),
            _e("enrolled_not_shipped", "S10", "WO-C"),
        ],
        "shipped_not_enrolled": [
            _e("shipped_not_enrolled", "X01", "WO-B"),  # least order among the day's rows
            _e("shipped_not_enrolled", "X03", "WO-C"),
        ],
        "shipped_twice": [
            _e("shipped_twice", "S07", "WO-A", "2"),
            _e("shipped_twice", "X01", "WO-A", "3"),
        ],
        "foreign_chip": [
            _e("foreign_chip", "S05", "WO-A", "CHIP-S05"),
            _e("foreign_chip", "S10", "WO-C", "CHIP-S10"),
        ],
    },
    None: {
        "enrolled_not_shipped": [
            _e("enrolled_not_shipped", "S02", "WO-A"),
            _e("enrolled_not_shipped", "S03", "WO-B"),
            _e("enrolled_not_shipped", "S10", "WO-C"),
        ],
        "shipped_not_enrolled": [
            _e("shipped_not_enrolled", "X01", "WO-A"),
            _e("shipped_not_enrolled", "X02", "WO-B"),
            _e("shipped_not_enrolled", "X03", "WO-C"),
        ],
        "shipped_twice": [
            _e("shipped_twice", "S07", "WO-A", "2"),
            _e("shipped_twice", "S08", "WO-A", "2"),
            _e("shipped_twice", "X01", "WO-A", "3"),
        ],
        "foreign_chip": [
            _e("foreign_chip", "S05", "WO-A", "CHIP-S05"),
            _e("foreign_chip", "S06", "WO-A", "CHIP-S06"),
            _e("foreign_chip", "S10", "WO-C", "CHIP-S10"),
        ],
    },
}


@pytest.mark.parametrize("day", [DAY, None], ids=["day", "all_time"])
@pytest.mark.parametrize("merge", [False, True], ids=["probe", "merge"])
def test_every_form_finds_exactly_the_exceptions(
    session: Session, day: date | None, merge: bool
) -> None:
    w = Window(day)
    at, shipped = w.at(DeviceRow.enrolled_at), w.shipped(ShipmentRow.ship_date)
    plan = sets.Plan(merge_devices=merge, merge_shipments=merge)
    expected = EXPECTED[day]
    assert sets.enrolled_not_shipped(session, at, plan) == expected["enrolled_not_shipped"]
    assert sets.shipped_not_enrolled(session, shipped, plan) == expected["shipped_not_enrolled"]
    assert sets.shipped_twice(session, shipped if day else None) == expected["shipped_twice"]
    assert sets.foreign_chips(session, at, plan) == expected["foreign_chip"]
    if session.get_bind().dialect.name == "postgresql":
        assert sets.serial_exceptions_postgres(session, at, shipped) == (
            expected["enrolled_not_shipped"],
            expected["shipped_not_enrolled"],
            expected["shipped_twice"],
        )


@pytest.mark.parametrize("day", [DAY, None], ids=["day", "all_time"])
def test_the_report_takes_the_same_exceptions_and_utc_buckets(
    session: Session, day: date | None
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Buckets are UTC hours whatever the session's zone (behind UTC by 3:30 on purpose).
        session.execute(text("SET LOCAL TIME ZONE 'America/St_Johns'"))
    figures = compute_figures(session, day, {})
    found: dict[str, list[Exception_]] = {kind: [] for kind in EXPECTED[day]}
    for item in figures.exceptions:
        found[item.kind].append(item)
    assert found == EXPECTED[day]
    buckets = {(h.line, h.bucket): h.count for h in figures.minted_per_bucket}
    if day is None:
        assert buckets == {
            ("line0", "2026-11-25"): 1,  # S08
            ("line1", "2026-11-25"): 1,  # S03
            ("line0", "2026-11-26"): 4,  # S02 S04 S05 S09
            ("line1", "2026-11-26"): 1,  # S01
            ("line2", "2026-11-26"): 2,  # S07 S10
            ("line0", "2026-11-27"): 1,  # S06
        }
    else:
        assert buckets == {
            ("line0", "2026-11-26T12"): 3,
            ("line1", "2026-11-26T12"): 1,
            ("line2", "2026-11-26T12"): 1,
            ("line0", "2026-11-26T00"): 1,
            ("line2", "2026-11-26T23"): 1,
        }


def test_the_plan_merges_only_when_the_window_is_a_large_part(session: Session) -> None:
    w = Window(DAY)
    at, shipped = w.at(DeviceRow.enrolled_at), w.shipped(ShipmentRow.ship_date)
    sqlite = session.get_bind().dialect.name == "sqlite"  # PostgreSQL: chips only
    # 7 of 10 devices enrolled on the day and 7 of 14 shipments on it: both merge.
    assert sets.choose_plan(session, at, shipped, False) == sets.Plan(True, sqlite)
    quiet = Window(DAY - timedelta(days=1))  # S03 and S08, and 3 shipments
    q_at, q_shipped = quiet.at(DeviceRow.enrolled_at), quiet.shipped(ShipmentRow.ship_date)
    assert sets.choose_plan(session, q_at, q_shipped, False) == sets.Plan(False, False)
    assert sets.choose_plan(session, at, shipped, True) == sets.Plan(True, True)


def test_a_quiet_day_takes_the_probing_plan_and_finds_the_same(session: Session) -> None:
    quiet = DAY - timedelta(days=1)  # S03 and S08 enrolled, three shipments
    timings: dict[str, float] = {}
    figures = compute_figures(session, quiet, timings)
    assert "serials" not in timings  # PostgreSQL's one merge full join is for busy windows
    assert sorted(figures.exceptions, key=lambda e: (e.kind, e.serial)) == [
        _e("enrolled_not_shipped", "S03", "WO-B"),
        _e("shipped_not_enrolled", "X02", "WO-B"),
        _e("shipped_twice", "S07", "WO-A", "2"),
        _e("shipped_twice", "S08", "WO-A", "2"),
    ]
