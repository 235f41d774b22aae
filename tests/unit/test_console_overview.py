"""The console overview's content (pure): what each viewer sees, which alerts fire, and the
chart geometry that draws minted against quota."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from birthright.enrollment.model import Station, WorkOrder
from birthright.operators.model import Operator
from birthright.operators.roles import Role
from birthright.reconcile.report import (
    Exception_,
    Figures,
    HourlyCount,
    Report,
    WorkOrderFigures,
    assemble,
)
from birthright.server.console.charts import quota_chart
from birthright.server.console.overview import REFUSAL_SPIKE, Overview, build_overview
from birthright.types import StationId

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ADMIN = Operator(name="ada", role=Role.ADMIN, created_at=NOW)
LINE1 = Operator(name="lin", role=Role.LINE_OPERATOR, created_at=NOW, site="s1", line="l1")


def order(wo: str, line: str, minted: int, quantity: int) -> WorkOrder:
    return WorkOrder(wo, "P", "s1", line, quantity, "BR", 1, 1000, 1 + minted, minted, "open",
                     NOW - timedelta(days=1), NOW + timedelta(days=1))  # fmt: skip


ORDERS = [order("WO-1", "l1", 95, 100), order("WO-2", "l2", 10, 100)]
STATIONS = [Station(StationId("st-1"), "s1", "l1", "active"),
            Station(StationId("st-2"), "s1", "l2", "suspended")]  # fmt: skip


def report(*, chips_delivered: int = 0, foreign: int = 0) -> Report:
    figures = Figures(
        work_orders=(
            WorkOrderFigures("WO-1", "s1", "l1", 100, 7, 95, 0),
            WorkOrderFigures("WO-2", "s1", "l2", 100, 3, 10, 0),
        ),
        exceptions=tuple(Exception_("foreign_chip", f"S{i}", "WO-1") for i in range(foreign)),
        refused_by_code={"quota_exhausted": 2},
        alerts=(),
        minted_per_bucket=(
            HourlyCount("s1", "l1", "2026-03-02T09", 7),
            HourlyCount("s1", "l2", "2026-03-02T10", 3),
        ),
        chips_delivered=chips_delivered,
    )
    return assemble(figures, day=NOW.date(), now=NOW)


def overview(viewer: Operator, refusals: int = 0, **kw: int) -> Overview:
    return build_overview(
        viewer=viewer,
        report=report(**kw),
        work_orders=ORDERS,
        stations=STATIONS,
        recorded_alerts=[],
        refusals_last_hour=refusals,
    )


def test_a_line_operator_sees_only_its_line() -> None:
    mine, everything = overview(LINE1), overview(ADMIN)
    assert [b.label for b in mine.quota.bars] == ["WO-1"]
    assert [s.station_id for s in mine.stations] == ["st-1"]
    assert mine.minted_today == 7 and everything.minted_today == 10
    assert {c.label: c.count for c in mine.hourly.columns if c.count} == {"09": 7}


def test_a_work_order_near_its_quota_raises_an_alert() -> None:
    alerts = overview(ADMIN).alerts
    assert [(a.kind, a.severity) for a in alerts] == [("quota.near_exhausted", "warning")]
    assert "WO-1" in alerts[0].message and "5 left" in alerts[0].message


@pytest.mark.parametrize(("refusals", "fires"), [(REFUSAL_SPIKE, False), (REFUSAL_SPIKE + 1, True)])
def test_a_spike_of_refusals_raises_an_alert(refusals: int, fires: bool) -> None:
    kinds = {a.kind for a in overview(ADMIN, refusals=refusals).alerts}
    assert ("refusals.spike" in kinds) is fires


@pytest.mark.parametrize(("delivered", "fires"), [(0, False), (10, True)])
def test_foreign_chips_alert_only_once_deliveries_are_known(delivered: int, fires: bool) -> None:
    kinds = {a.kind for a in overview(ADMIN, chips_delivered=delivered, foreign=2).alerts}
    assert ("reconcile.foreign_chip" in kinds) is fires


def test_quota_bars_scale_to_their_quota_and_never_overflow() -> None:
    chart = quota_chart([("A", 5, 50, 100), ("B", 0, 120, 100), ("C", 0, 0, 0)], track=400)
    a, b, c = chart.bars
    assert (a.width, a.today_width, a.tone, a.percent) == (200.0, 20.0, "ok", 50)
    assert (b.width, b.tone) == (400.0, "full")
    assert (c.width, c.percent) == (0.0, 0)
