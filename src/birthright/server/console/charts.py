"""Chart geometry for server-rendered inline SVG: values in, rectangles out (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuotaBar:
    label: str
    minted_today: int
    minted_total: int
    quota: int
    y: int
    width: float  # of the minted part, in px
    today_width: float  # of today's part, drawn over the minted part
    track: float  # the whole quota, in px
    tone: str  # "ok" | "near" | "full"

    @property
    def percent(self) -> int:
        return round(100 * self.minted_total / self.quota) if self.quota else 0


@dataclass(frozen=True)
class QuotaChart:
    bars: list[QuotaBar]
    width: int
    height: int
    label_width: int


NEAR = 0.9  # from this share of its quota on, a work order is "near exhausted"


def quota_chart(
    rows: list[tuple[str, int, int, int]], *, track: int = 420, label_width: int = 150
) -> QuotaChart:
    """One bar per work order: (label, minted today, minted all time, quota)."""
    bars = []
    for i, (label, today, total, quota) in enumerate(rows):
        share = min(total / quota, 1.0) if quota else 0.0
        today_share = min(today / quota, share) if quota else 0.0
        tone = "full" if share >= 1.0 else "near" if share >= NEAR else "ok"
        bars.append(
            QuotaBar(label, today, total, quota, 10 + i * 34, share * track, today_share * track,
                     track, tone)
        )  # fmt: skip
    return QuotaChart(bars, label_width + track + 230, 20 + 34 * max(len(rows), 1), label_width)


@dataclass(frozen=True)
class Column:
    label: str
    count: int
    x: float
    height: float


@dataclass(frozen=True)
class ColumnChart:
    columns: list[Column]
    width: int
    height: int
    peak: int
    base: int  # y of the axis


def hourly_chart(counts: dict[str, int], *, height: int = 140, column: int = 16) -> ColumnChart:
    """Units minted per hour (label "HH"), 24 columns, tallest at ``height`` px."""
    peak = max(counts.values(), default=0)
    columns = [
        Column(
            f"{h:02d}",
            counts.get(f"{h:02d}", 0),
            30 + h * (column + 4),
            (counts.get(f"{h:02d}", 0) / peak * height) if peak else 0.0,
        )
        for h in range(24)
    ]
    return ColumnChart(columns, 30 + 24 * (column + 4) + 10, height + 40, peak, height + 10)
