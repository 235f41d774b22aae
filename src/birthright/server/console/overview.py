"""The overview's content: today's minting against quota, stations, alerts (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from birthright.enrollment.model import Station, WorkOrder
from birthright.operators.model import Operator
from birthright.reconcile.report import Report
from birthright.server.console.charts import (
    NEAR,
    ColumnChart,
    QuotaChart,
    hourly_chart,
    quota_chart,
)

#: Refused requests in the last hour above which the overview warns of a spike.
REFUSAL_SPIKE = 20
RECONCILE_KINDS = ("shipped_not_enrolled", "shipped_twice", "foreign_chip")


@dataclass(frozen=True)
class ConsoleAlert:
    severity: str  # "critical" | "warning"
    kind: str
    message: str


@dataclass(frozen=True)
class Overview:
    quota: QuotaChart
    hourly: ColumnChart
    stations: list[Station]
    alerts: list[ConsoleAlert]
    minted_today: int
    refused_today: int


def build_overview(
    *,
    viewer: Operator,
    report: Report,
    work_orders: list[WorkOrder],
    stations: list[Station],
    recorded_alerts: list[dict[str, object]],
    refusals_last_hour: int,
) -> Overview:
    """What ``viewer`` sees: a line operator only its own line's work orders and stations."""
    mine = [w for w in work_orders if viewer.sees_line(w.site, w.line)]
    today = {s.name: s.minted for s in report.work_orders}
    shown = [w for w in mine if w.status == "open" or today.get(w.work_order_id)]
    rows = [(w.work_order_id, today.get(w.work_order_id, 0), w.minted, w.quantity) for w in shown]
    hours: dict[str, int] = {}
    for bucket in report.minted_per_bucket:
        if viewer.sees_line(bucket.site, bucket.line):
            hour = bucket.bucket[-2:]
            hours[hour] = hours.get(hour, 0) + bucket.count
    return Overview(
        quota=quota_chart(rows),
        hourly=hourly_chart(hours),
        stations=[s for s in stations if viewer.sees_line(s.site, s.line)],
        alerts=_alerts(mine, report, recorded_alerts, refusals_last_hour),
        minted_today=sum(r[1] for r in rows),
        refused_today=sum(report.refused_by_code.values()),
    )


def _alerts(
    work_orders: list[WorkOrder],
    report: Report,
    recorded: list[dict[str, object]],
    refusals_last_hour: int,
) -> list[ConsoleAlert]:
    found: list[ConsoleAlert] = []
    for w in work_orders:
        if w.status == "open" and w.quantity and w.minted >= NEAR * w.quantity:
            left = w.quantity - w.minted
            found.append(
                ConsoleAlert(
                    "critical" if left <= 0 else "warning",
                    "quota.near_exhausted",
                    f"{w.work_order_id}: {w.minted}/{w.quantity} minted, {max(left, 0)} left",
                )
            )
    if refusals_last_hour > REFUSAL_SPIKE:
        found.append(
            ConsoleAlert(
                "warning",
                "refusals.spike",
                f"{refusals_last_hour} refused requests in the last hour",
            )
        )
    for kind in RECONCILE_KINDS:
        if kind == "foreign_chip" and not report.chips_delivered:
            continue  # no chip delivery imported yet: every chip would look foreign
        n = len(report.exceptions.get(kind, ()))
        if n:
            found.append(
                ConsoleAlert(
                    "warning", f"reconcile.{kind}", f"{n} unit(s) {kind.replace('_', ' ')}"
                )
            )
    for a in recorded[:20]:
        found.append(ConsoleAlert(str(a["severity"]), str(a["kind"]), str(a["message"])))
    return found
