"""The morning report as one self-contained HTML page (no script, no remote resource).

Summary first: the key figures as cards (each carries ``data-figure`` so a test can read it
from the DOM), sites, lines, work orders. Then each exception kind: a count per work order, a
link to download every serial as CSV, and the first serials in collapsible pages of
``PAGE`` rows, so a list of thousands stays readable. Then refusals, alerts and a chart of units
minted per hour (or day) per line as inline SVG. ``printable`` drops the collapsible parts
and links for the PDF. Every value shown is escaped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from html import escape

from birthright.reconcile.report import KINDS, Exception_, Report, Summary

HTML_CAP = 1000
PAGE = 100
TITLES = {
    "enrolled_not_shipped": "Enrolled, never shipped (overrun or smuggled)",
    "shipped_not_enrolled": "Shipped, never enrolled",
    "shipped_twice": "Shipped more than once",
    "foreign_chip": "Chips used that were never delivered",
}
CARDS = (
    ("minted", "minted"),
    ("shipped", "shipped"),
    ("enrolled_not_shipped", "enrolled, not shipped"),
    ("shipped_not_enrolled", "shipped, not enrolled"),
    ("shipped_twice", "shipped twice"),
    ("foreign_chip", "foreign chips"),
    ("minted_beyond_order", "minted beyond order"),
)
COLUMN_LABELS = {
    "minted": "minted",
    "minted_total": "minted (all time)",
    "minted_beyond_order": "beyond order",
    "enrolled_not_shipped": "not shipped",
    "shipped_not_enrolled": "never enrolled",
    "shipped_twice": "shipped twice",
    "foreign_chip": "foreign chips",
}
STYLE = """
body{font-family:"DejaVu Sans",sans-serif;margin:1.5em;color:#222;font-size:14px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.card{border:1px solid #ccc;border-radius:6px;padding:.5em .9em;min-width:8em}
.card dd{font-size:1.8em;margin:0;font-weight:bold}.card dt{color:#555}
.card.bad{border-color:#b00020;background:#fdecee}.card.bad dd{color:#b00020}
.verdict{font-weight:bold}.verdict.bad{color:#b00020}.verdict.ok{color:#1b6e20}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
details{margin:.2em 0}summary{cursor:pointer;color:#1f4e79}
.chart{margin:.5em 0 1em}
td:first-child{white-space:nowrap}
@page{size:A4 landscape;margin:1.2cm}
@media print{body{font-size:11px;margin:0}table{font-size:10px}}
"""
Links = Callable[[str], str]


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summaries(summaries: Sequence[Summary]) -> str:
    if not summaries:
        return "<p>None in this period.</p>"
    keys = list(summaries[0].counts.keys())
    columns = ["name", *(COLUMN_LABELS.get(k, k) for k in keys)]
    return _table(columns, [[s.name, *s.counts.values()] for s in summaries])


def _cards(report: Report) -> str:
    total = report.total
    cards = []
    for key, label in CARDS:
        value = getattr(total, key)
        bad = " bad" if key not in ("minted", "shipped") and value else ""
        cards.append(
            f'<dl class="card{bad}"><dd data-figure="{key}">{value}</dd>'
            f"<dt>{escape(label)}</dt></dl>"
        )
    refused = sum(report.refused_by_code.values())
    cards.append(
        f'<dl class="card"><dd data-figure="refused">{refused}</dd><dt>refused attempts</dt></dl>'
    )
    cards.append(
        f'<dl class="card"><dd data-figure="chips_delivered">{report.chips_delivered}</dd>'
        "<dt>chips delivered (on record)</dt></dl>"
    )
    exceptions = sum(len(v) for v in report.exceptions.values())
    verdict = (
        '<p class="verdict ok" id="verdict">Every unit reconciles.</p>'
        if exceptions == 0 and total.minted_beyond_order == 0
        else f'<p class="verdict bad" id="verdict">{exceptions} exception(s) need attention.</p>'
    )
    return f'<section class="cards" id="figures">{"".join(cards)}</section>{verdict}'


def _exception_rows(items: Sequence[Exception_]) -> list[list[object]]:
    return [[e.serial, e.work_order_id or "", e.detail] for e in items]


def _exceptions(kind: str, items: Sequence[Exception_], cap: int, links: Links | None) -> str:
    parts = [f'<section id="{kind}"><h3>{escape(TITLES[kind])} ({len(items)})</h3>']
    if not items:
        return parts[0] + "<p>None.</p></section>"
    per_order = Counter(e.work_order_id or "(none)" for e in items).most_common(20)
    parts.append(
        "<p>By work order: " + ", ".join(f"{escape(wo)}: {n}" for wo, n in per_order) + "</p>"
    )
    if links is not None:
        parts.append(
            f'<p><a class="download" download href="{escape(links(kind))}">'
            f"Download all {len(items)} serials (CSV)</a></p>"
        )
    shown = items[:cap]
    headers = ["serial", "work order", "detail"]
    if links is None:  # printable: one plain table
        parts.append(_table(headers, _exception_rows(shown)))
    else:
        for start in range(0, len(shown), PAGE):
            page = shown[start : start + PAGE]
            opened = " open" if start == 0 and len(items) <= PAGE else ""
            parts.append(
                f"<details{opened}><summary>serials {start + 1}–{start + len(page)}</summary>"
                f"{_table(headers, _exception_rows(page))}</details>"
            )
    if len(items) > cap:
        parts.append(f"<p>… and {len(items) - cap} more: the CSV list and the JSON report.</p>")
    parts.append("</section>")
    return "".join(parts)


def _buckets(report: Report) -> list[str]:
    seen = sorted({h.bucket for h in report.minted_per_bucket})
    if report.day is not None:  # every hour of the day, quiet ones too
        start = datetime(report.day.year, report.day.month, report.day.day)
        return [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(24)]
    return seen[-60:]


def _chart(report: Report) -> str:
    per_line: dict[str, dict[str, int]] = defaultdict(dict)
    for h in report.minted_per_bucket:
        per_line[f"{h.site}/{h.line}"][h.bucket] = h.count
    if not per_line:
        return "<p>No units minted in this period.</p>"
    buckets = _buckets(report)
    peak = max(max(c.values()) for c in per_line.values()) or 1
    bar, gap, height, left = 14, 3, 120, 48
    width = left + len(buckets) * (bar + gap) + 10
    parts = []
    for name, counts in sorted(per_line.items()):
        shapes = [
            f'<line x1="{left - 4}" y1="{height + 10}" x2="{width}" y2="{height + 10}" '
            'stroke="#888"/>',
            f'<text x="0" y="18" font-size="10">{peak}</text>',
            f'<text x="0" y="{height + 10}" font-size="10">0</text>',
        ]
        for i, b in enumerate(buckets):
            n = counts.get(b, 0)
            tall = round(height * n / peak)
            x = left + i * (bar + gap)
            shapes.append(
                f'<rect x="{x}" y="{height - tall + 10}" width="{bar}" height="{tall}" '
                f'fill="#3b6ea5"><title>{escape(b)}: {n}</title></rect>'
            )
            if i % 6 == 0:
                label = b[11:13] + "h" if report.day is not None else b[5:]
                shapes.append(
                    f'<text x="{x}" y="{height + 24}" font-size="10">{escape(label)}</text>'
                )
        total = sum(counts.values())
        parts.append(
            f'<figure class="chart" data-line="{escape(name)}"><figcaption>{escape(name)}: '
            f"{total} minted</figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" '
            f'role="img" aria-label="units minted per {report.bucket}, {escape(name)}">'
            f"{''.join(shapes)}</svg></figure>"
        )
    return "".join(parts)


ALERT_HEADERS = ["at", "kind", "severity", "station", "work order", "message"]


def _alert_rows(report: Report) -> list[list[object]]:
    rows: list[list[object]] = []
    for a in report.alerts:
        at = a.at.isoformat(timespec="seconds")
        rows.append([at, a.kind, a.severity, a.station_id or "", a.work_order_id or "", a.message])
    return rows


def _capped(title: str, rows: list[list[object]], headers: list[str], cap: int) -> str:
    body = _table(headers, rows[:cap]) if rows else "<p>None.</p>"
    more = f"<p>… and {len(rows) - cap} more in the JSON report.</p>" if len(rows) > cap else ""
    return f"<h2>{escape(title)} ({len(rows)})</h2>{body}{more}"


def to_html(
    report: Report, *, cap: int = HTML_CAP, links: Links | None = None, printable: bool = False
) -> bytes:
    """The page; ``links(kind)`` is the href of a CSV list of every serial of that kind."""
    use_links = None if printable else (links or (lambda kind: f"exceptions/{kind}.csv"))
    sections = [
        f"<h1>Reconciliation — {escape(report.period)}</h1>",
        f"<p>Generated {escape(report.generated_at.isoformat(timespec='seconds'))}.</p>",
        _cards(report),
        "<h2>Sites</h2>",
        _summaries((report.total, *report.sites)),
        "<h2>Lines</h2>",
        _summaries(report.lines),
        f"<h2>Work orders ({len(report.work_orders)})</h2>",
        _summaries(report.work_orders),
        "<h2>Exceptions</h2>",
        *(_exceptions(k, report.exceptions.get(k, ()), cap, use_links) for k in KINDS),
        "<h2>Refused enrollment attempts</h2>",
        _table(["code", "count"], [[c, n] for c, n in report.refused_by_code.items()])
        if report.refused_by_code
        else "<p>None.</p>",
        _capped("Alerts", _alert_rows(report), ALERT_HEADERS, cap),
        f"<h2>Units minted per {report.bucket}, per line</h2>",
        _chart(report),
    ]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Reconciliation {escape(report.period)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    return page.encode()
