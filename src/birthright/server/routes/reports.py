"""Reconciliation reports kept in the history: list, fetch by day and format, signatures.

Like the other operator endpoints these carry no authentication yet (it comes with the
operator console issue): deploy them behind a boundary only operators can cross.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel

from birthright.operators.roles import Permission
from birthright.reconcile.history import FORMATS, ReportEntry, parse_period
from birthright.reconcile.render import MEDIA_TYPES
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors

router = APIRouter(
    tags=["reports"],
    dependencies=[require(Permission.REPORTS_VIEW)],
    responses=OPERATOR_ERRORS,
)

PERIOD = r"^(\d{4}-\d{2}-\d{2}|all-time)$"
FORMAT = "^(" + "|".join(FORMATS) + ")$"
KIND = r"^[a-z_]{1,32}$"
PeriodPath = Annotated[str, Path(pattern=PERIOD, description="YYYY-MM-DD (UTC) or all-time.")]
FormatPath = Annotated[str, Path(pattern=FORMAT)]


class ReportItem(BaseModel):
    period: str
    format: str
    generated_at: datetime
    trigger: str
    sha256: str
    size: int
    url: str
    signature_url: str


class ReportList(BaseModel):
    reports: list[ReportItem]


def _item(e: ReportEntry) -> ReportItem:
    url = f"/v1/reports/{e.period}/{e.format}"
    return ReportItem(
        period=e.period,
        format=e.format,
        generated_at=e.generated_at,
        trigger=e.trigger,
        sha256=e.sha256,
        size=e.size,
        url=url,
        signature_url=f"{url}/signature",
    )


@router.get("/v1/reports", responses=errors(400, 422))
def list_reports(
    backend: BackendDep,
    period: Annotated[str | None, Query(pattern=PERIOD)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReportList:
    """Every kept report, newest first (the latest of a day and format is the one served)."""
    if period is not None:
        parse_period(period)
    entries = backend.reports.history.entries(period, limit=limit)
    return ReportList(reports=[_item(e) for e in entries])


#: The HTML report is self-contained: no script, no remote fetch, styles and SVG inline.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox allow-downloads"


def _headers(sha256: str, name: str) -> dict[str, str]:
    return {
        "X-Report-Sha256": sha256,
        "Content-Disposition": f'inline; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": REPORT_CSP,
    }


@router.get(
    "/v1/reports/{period}/{fmt}",
    response_class=Response,
    responses={**errors(400, 404, 422), 200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def fetch_report(backend: BackendDep, period: PeriodPath, fmt: FormatPath) -> Response:
    """The latest kept report of that day in that format, exactly as signed."""
    parse_period(period)
    stored = backend.reports.fetch(period, fmt)
    name = f"reconciliation-{period}.{fmt}"
    return Response(
        stored.content,
        media_type=MEDIA_TYPES[fmt],
        headers=_headers(stored.entry.sha256, name),
    )


@router.get(
    "/v1/reports/{period}/{fmt}/signature",
    response_class=Response,
    responses={**errors(400, 404, 422), 200: {"content": {"application/json": {}}}},
)
def fetch_signature(backend: BackendDep, period: PeriodPath, fmt: FormatPath) -> Response:
    """The detached signature of that report (``birthright report verify`` checks it)."""
    parse_period(period)
    stored = backend.reports.fetch(period, fmt)
    name = f"reconciliation-{period}.{fmt}.sig"
    return Response(
        stored.signature,
        media_type="application/json",
        headers=_headers(stored.entry.sha256, name),
    )


@router.get(
    "/v1/reports/{period}/exceptions/{kind}.csv",
    response_class=Response,
    responses={**errors(400, 404, 422), 200: {"content": {"text/csv": {}}}},
)
def exception_list(
    backend: BackendDep, period: PeriodPath, kind: Annotated[str, Path(pattern=KIND)]
) -> Response:
    """Every serial of one exception kind, from that day's signed JSON report."""
    parse_period(period)
    data = backend.reports.exception_list(period, kind)
    return Response(
        data,
        media_type=MEDIA_TYPES["csv"],
        headers={"Content-Disposition": f'attachment; filename="{period}-{kind}.csv"'},
    )
