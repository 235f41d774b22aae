"""Render a ``Report`` as JSON, CSV, HTML or PDF (bytes, ready to sign).

JSON and CSV carry every number and every exception serial. The HTML page (``html.py``) puts
the summary first and pages long exception lists; the PDF is that page printed (``pdf.py``),
its lists capped at ``PDF_CAP`` serials per kind (the JSON and CSV list all).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from birthright.reconcile.html import TITLES, to_html
from birthright.reconcile.report import Report, Summary

PDF_CAP = 200
__all__ = ["MEDIA_TYPES", "RENDERERS", "TITLES", "to_csv", "to_html", "to_json", "to_pdf"]


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


def to_pdf(report: Report) -> bytes:
    from birthright.reconcile.pdf import render_pdf  # WeasyPrint loads only when asked

    return render_pdf(to_html(report, printable=True, cap=PDF_CAP))


def exception_list_csv(kind: str, items: Iterable[Mapping[str, Any]]) -> bytes:
    """Every serial of one exception kind, as a downloadable list."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["kind", "serial", "work_order", "detail"])
    for e in items:
        w.writerow([kind, e.get("serial", ""), e.get("work_order") or "", e.get("detail", "")])
    return _csv_safe(out.getvalue()).encode()


RENDERERS: dict[str, Callable[[Report], bytes]] = {
    "json": to_json,
    "csv": to_csv,
    "html": to_html,
    "pdf": to_pdf,
}
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
