"""Render a ``Report`` as JSON, CSV or a self-contained HTML page (bytes, ready to sign).

JSON and CSV carry every number and every exception serial. The HTML page puts the summary
first, caps long exception lists (the full lists are in the JSON/CSV), draws units minted per
hour per line as an inline SVG bar chart, and escapes every value it shows.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from html import escape
from typing import Any

from birthright.reconcile.report import KINDS, Report, Summary

HTML_CAP = 200
TITLES = {
    "enrolled_not_shipped": "Enrolled, never shipped (overrun or smuggled)",
    "shipped_not_enrolled": "Shipped, never enrolled",
    "shipped_twice": "Shipped more than once",
    "foreign_chip": "Chips used that were never delivered",
}


def _summary(summary: Summary) -> dict[str, Any]:
    return {"name": summary.name, "site": summary.site, "line": summary.line, **summary.counts}


def to_json(report: Report) -> bytes:
    body = {
        "report": "birthright.reconciliation.v1",
        "period": report.period,
        "generated_at": report.generated_at.isoformat(),
        "chips_delivered_on_record": report.chips_delivered,
        "total": _summary(report.total),
        "sites": [_summary(s) for s in report.sites],
        "lines": [_summary(s) for s in report.lines],
        "work_orders": [_summary(s) for s in report.work_orders],
        "exceptions": {
            kind: [
                {"serial": e.serial, "work_order": e.work_order_id, "detail": e.detail}
                for e in items
            ]
            for kind, items in report.exceptions.items()
        },
        "refused_enrollments_by_code": dict(report.refused_by_code),
        "alerts": [
            {
                "at": a.at.isoformat(),
                "kind": a.kind,
                "severity": a.severity,
                "station_id": a.station_id,
                "work_order": a.work_order_id,
                "message": a.message,
            }
            for a in report.alerts
        ],
        f"minted_per_{report.bucket}": [
            {"site": h.site, "line": h.line, report.bucket: h.bucket, "count": h.count}
            for h in report.minted_per_bucket
        ],
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()


def to_csv(report: Report) -> bytes:
    """One long table: section, scope name, site, line, work order, item, value."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "name", "site", "line", "work_order", "item", "value"])
    w.writerow(["meta", "period", "", "", "", "period", report.period])
    w.writerow(
        ["meta", "generated_at", "", "", "", "generated_at", report.generated_at.isoformat()]
    )
    for summary in (report.total, *report.sites, *report.lines, *report.work_orders):
        wo = summary.name if summary.scope == "work_order" else ""
        for key, value in summary.counts.items():
            w.writerow([summary.scope, summary.name, summary.site, summary.line, wo, key, value])
    for kind, items in report.exceptions.items():
        for e in items:
            w.writerow([kind, e.serial, "", "", e.work_order_id or "", "detail", e.detail])
    for code, n in report.refused_by_code.items():
        w.writerow(["refused", code, "", "", "", "count", n])
    for a in report.alerts:
        w.writerow(["alert", a.kind, "", "", a.work_order_id or "", a.severity, a.message])
    for h in report.minted_per_bucket:
        w.writerow([f"minted_per_{report.bucket}", h.bucket, h.site, h.line, "", "count", h.count])
    return _csv_safe(out.getvalue()).encode()


def _csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas in cells a manifest or station controlled."""
    rows = csv.reader(io.StringIO(text))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for row in rows:
        w.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in row])
    return out.getvalue()


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_rows(summaries: tuple[Summary, ...]) -> list[list[object]]:
    return [[s.name, *s.counts.values()] for s in summaries]


def _chart(report: Report) -> str:
    per_line: dict[str, dict[str, int]] = defaultdict(dict)
    for h in report.minted_per_bucket:
        per_line[f"{h.site}/{h.line}"][h.bucket] = h.count
    if not per_line:
        return "<p>No units minted in this period.</p>"
    buckets = sorted({b for counts in per_line.values() for b in counts})[-48:]
    peak = max(max(c.values()) for c in per_line.values()) or 1
    bar, gap, height = 12, 4, 120
    width = len(buckets) * (bar + gap) + 40
    parts = []
    for name, counts in sorted(per_line.items()):
        rects = []
        for i, b in enumerate(buckets):
            n = counts.get(b, 0)
            tall = round(height * n / peak)
            x = 40 + i * (bar + gap)
            rects.append(
                f'<rect x="{x}" y="{height - tall + 10}" width="{bar}" height="{tall}" '
                f'fill="#3b6ea5">'
                f"<title>{escape(b)}: {n}</title></rect>"
            )
        parts.append(
            f"<h3>{escape(name)}</h3>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
            f'role="img" aria-label="units minted per {report.bucket}, {escape(name)}">'
            f'<text x="0" y="20" font-size="10">{peak}</text>'
            f'<text x="40" y="{height + 25}" font-size="10">{escape(buckets[0])}</text>'
            f"{''.join(rects)}</svg>"
        )
    return "".join(parts)


def to_html(report: Report, *, cap: int = HTML_CAP) -> bytes:
    columns = ["name", *report.total.counts.keys()]
    sections = [
        f"<h1>Reconciliation — {escape(report.period)}</h1>",
        f"<p>Generated {escape(report.generated_at.isoformat())}; "
        f"{report.chips_delivered} delivered chip ids on record.</p>",
        "<h2>Summary</h2>",
        _table(columns, _summary_rows((report.total, *report.sites))),
        "<h2>Lines</h2>",
        _table(columns, _summary_rows(report.lines)),
        "<h2>Work orders</h2>",
        _table(columns, _summary_rows(report.work_orders)),
        "<h2>Exceptions</h2>",
    ]
    for kind in KINDS:
        items = report.exceptions.get(kind, ())
        sections.append(f"<h3>{escape(TITLES[kind])} ({len(items)})</h3>")
        rows: list[list[object]] = [
            [e.serial, e.work_order_id or "", e.detail] for e in items[:cap]
        ]
        if rows:
            sections.append(_table(["serial", "work order", "detail"], rows))
        if len(items) > cap:
            sections.append(
                f"<p>… and {len(items) - cap} more: the JSON and CSV reports list all.</p>"
            )
    sections += [
        "<h2>Refused enrollment attempts</h2>",
        _table(["code", "count"], [[c, n] for c, n in report.refused_by_code.items()]),
        f"<h2>Alerts ({len(report.alerts)})</h2>",
        _table(
            ["at", "kind", "severity", "station", "work order", "message"],
            [
                [
                    a.at.isoformat(),
                    a.kind,
                    a.severity,
                    a.station_id or "",
                    a.work_order_id or "",
                    a.message,
                ]
                for a in report.alerts[:cap]
            ],
        ),
        f"<h2>Units minted per {report.bucket}, per line</h2>",
        _chart(report),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Reconciliation {escape(report.period)}</title><style>{style}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    return page.encode()


RENDERERS = {"json": to_json, "csv": to_csv, "html": to_html}
