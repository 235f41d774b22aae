"""The morning report: pure assembly of a ``Report`` from the figures the database computed.

The database does the set work (who was enrolled and never shipped, shipped and never enrolled,
shipped twice, enrolled on a chip nobody delivered); this module only rolls the per-work-order
figures up to lines and sites and attaches the exception lists. It takes values, never sessions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime


@dataclass(frozen=True)
class WorkOrderFigures:
    """What SQL counted for one work order (window counts for ``day``, else all time)."""

    work_order_id: str
    site: str
    line: str
    ordered: int
    minted: int  # identities issued in the window
    minted_total: int  # devices enrolled on the order, all time
    shipped: int  # distinct serials shipped in the window


@dataclass(frozen=True)
class Exception_:
    """One exceptional unit: its serial, work order and (for chips) the chip id or count."""

    kind: str
    serial: str
    work_order_id: str | None
    detail: str = ""


@dataclass(frozen=True)
class AlertItem:
    at: datetime
    kind: str
    severity: str
    station_id: str | None
    work_order_id: str | None
    message: str


@dataclass(frozen=True)
class HourlyCount:
    site: str
    line: str
    bucket: str  # "2026-11-27T14" (hour) or "2026-11-27" (day)
    count: int


@dataclass(frozen=True)
class Figures:
    """Everything the reconciliation queries return, before assembly."""

    work_orders: tuple[WorkOrderFigures, ...]
    exceptions: tuple[Exception_, ...]
    refused_by_code: Mapping[str, int]
    alerts: tuple[AlertItem, ...]
    minted_per_bucket: tuple[HourlyCount, ...]
    chips_delivered: int


KINDS = ("enrolled_not_shipped", "shipped_not_enrolled", "shipped_twice", "foreign_chip")


@dataclass(frozen=True)
class Summary:
    """Counts for one work order, line, site or the whole report."""

    scope: str  # "work_order" | "line" | "site" | "total"
    name: str
    site: str
    line: str
    ordered: int = 0
    minted: int = 0
    minted_total: int = 0
    shipped: int = 0
    minted_beyond_order: int = 0
    enrolled_not_shipped: int = 0
    shipped_not_enrolled: int = 0
    shipped_twice: int = 0
    foreign_chip: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("scope", "name", "site", "line")
        }


@dataclass(frozen=True)
class Report:
    day: date | None
    generated_at: datetime
    work_orders: tuple[Summary, ...]
    lines: tuple[Summary, ...]
    sites: tuple[Summary, ...]
    total: Summary
    exceptions: Mapping[str, tuple[Exception_, ...]]
    refused_by_code: Mapping[str, int]
    alerts: tuple[AlertItem, ...]
    minted_per_bucket: tuple[HourlyCount, ...]
    bucket: str  # "hour" | "day"
    chips_delivered: int

    @property
    def period(self) -> str:
        return self.day.isoformat() if self.day else "all time"


def _roll_up(scope: str, name: str, site: str, line: str, parts: Iterable[Summary]) -> Summary:
    totals: dict[str, int] = defaultdict(int)
    for part in parts:
        for key, value in part.counts.items():
            totals[key] += value
    return Summary(scope, name, site, line, **totals)


def assemble(figures: Figures, *, day: date | None, now: datetime) -> Report:
    """Roll the per-work-order figures up to lines, sites and a total."""
    per_kind: dict[str, list[Exception_]] = {kind: [] for kind in KINDS}
    per_order: dict[tuple[str | None, str], int] = defaultdict(int)
    for item in figures.exceptions:
        per_kind[item.kind].append(item)
        per_order[(item.work_order_id, item.kind)] += 1
    orders = tuple(
        Summary(
            "work_order",
            wo.work_order_id,
            wo.site,
            wo.line,
            ordered=wo.ordered,
            minted=wo.minted,
            minted_total=wo.minted_total,
            shipped=wo.shipped,
            minted_beyond_order=max(0, wo.minted_total - wo.ordered),
            **{kind: per_order[(wo.work_order_id, kind)] for kind in KINDS},
        )
        for wo in sorted(figures.work_orders, key=lambda w: (w.site, w.line, w.work_order_id))
    )
    by_line: dict[tuple[str, str], list[Summary]] = defaultdict(list)
    by_site: dict[str, list[Summary]] = defaultdict(list)
    for order in orders:
        by_line[(order.site, order.line)].append(order)
        by_site[order.site].append(order)
    lines = tuple(
        _roll_up("line", f"{site}/{line}", site, line, parts)
        for (site, line), parts in sorted(by_line.items())
    )
    sites = tuple(
        _roll_up("site", site, site, "", parts) for site, parts in sorted(by_site.items())
    )
    total = _roll_up("total", "total", "", "", orders)
    # Exceptions on a work order we do not know (shipped-not-enrolled) still count in the total.
    known = {order.name for order in orders}
    orphans = {k: sum(1 for e in v if e.work_order_id not in known) for k, v in per_kind.items()}
    total = replace(total, **{k: getattr(total, k) + orphans[k] for k in KINDS})
    return Report(
        day=day,
        generated_at=now,
        work_orders=orders,
        lines=lines,
        sites=sites,
        total=total,
        exceptions={k: tuple(sorted(v, key=lambda e: e.serial)) for k, v in per_kind.items()},
        refused_by_code=dict(sorted(figures.refused_by_code.items())),
        alerts=tuple(sorted(figures.alerts, key=lambda a: a.at)),
        minted_per_bucket=tuple(
            sorted(figures.minted_per_bucket, key=lambda h: (h.site, h.line, h.bucket))
        ),
        bucket="hour" if day else "day",
        chips_delivered=figures.chips_delivered,
    )
