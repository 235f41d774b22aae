"""Console pages that only read: overview, device search, work orders, reports, audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from birthright.db.audit import list_events, verify_audit_log
from birthright.db.console import ConsoleQueries
from birthright.db.operations import WorkOrders
from birthright.errors import NotFoundError
from birthright.operators.roles import Permission, Role, describe
from birthright.revocation.model import Reason
from birthright.server.console.overview import build_overview
from birthright.server.console.web import ConsoleRoute, backend_of, page, render
from birthright.server.pem import cert_pem

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
P = Permission
REASONS = [r.value for r in Reason]
STYLESHEET = (Path(__file__).parent / "console.css").read_text()


@router.get("/static/console.css")
def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=300"})


@router.get("", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    me = page(request, P.OVERVIEW_VIEW)
    backend = backend_of(request)
    now = datetime.now(UTC)
    view = build_overview(
        viewer=me.operator,
        report=backend.reports.build(now.date()),
        work_orders=WorkOrders(backend.sessions).list(),
        stations=backend.operations.stations(),
        recorded_alerts=backend.operations.alerts(limit=20),
        refusals_last_hour=ConsoleQueries(backend.sessions).refusals_since(
            now - timedelta(hours=1)
        ),
    )
    return render(request, "overview.html", me, view=view, today=now.date())


@router.get("/devices", response_class=HTMLResponse)
def devices(request: Request, q: Annotated[str, Query(max_length=128)] = "") -> Response:
    me = page(request, P.DEVICES_VIEW)
    backend = backend_of(request)
    q = q.strip()
    if not q:
        return render(request, "devices.html", me, q=q, device=None)
    queries = ConsoleQueries(backend.sessions)
    device = queries.find_device(q)
    if device is None:
        raise NotFoundError(f"no enrolled unit has serial or chip id {q!r}", code="device_unknown")
    cert = device.certificate
    state, revocation = backend.revocation.status(device.serial)
    entitlements = (
        backend.entitlements.find(serial=device.serial, limit=50)
        if me.operator.can(P.ENTITLEMENTS_VIEW)
        else None
    )
    return render(
        request,
        "devices.html",
        me,
        q=q,
        device=device,
        cert=cert,
        pem=cert_pem(cert),
        state=state,
        revocation=revocation,
        attestations=queries.attestations(device.serial),
        entitlements=entitlements,
        today=backend.entitlements.today().date(),
        reasons=REASONS,
    )


@router.get("/work-orders", response_class=HTMLResponse)
def work_orders(request: Request) -> Response:
    me = page(request, P.WORK_ORDERS_VIEW)
    orders = WorkOrders(backend_of(request).sessions).list()
    return render(request, "work_orders.html", me, orders=orders, now=datetime.now(UTC))


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request) -> Response:
    me = page(request, P.REPORTS_VIEW)
    entries = backend_of(request).reports.history.entries(limit=60)
    return render(request, "reports.html", me, entries=entries, today=datetime.now(UTC).date())


@router.get("/recall", response_class=HTMLResponse)
def recall(request: Request) -> Response:
    me = page(request, P.REVOCATION_MANAGE)
    return render(request, "recall.html", me, preview=None, reasons=REASONS, form={})


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    event: Annotated[str, Query(max_length=64)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    me = page(request, P.AUDIT_VIEW)
    backend = backend_of(request)
    chain = verify_audit_log(backend.sessions, backend.audit_public_key)
    events = list_events(backend.sessions, limit=50, offset=offset, event=event or None)
    return render(
        request,
        "audit.html",
        me,
        chain=chain,
        events=events,
        event=event,
        offset=offset,
        signed=backend.audit_public_key is not None,
    )


@router.get("/operators", response_class=HTMLResponse)
def operators(request: Request) -> Response:
    me = page(request, P.OPERATORS_MANAGE)
    return render(
        request,
        "operators.html",
        me,
        operators=backend_of(request).operators.list(),
        roles=[r.value for r in Role],
        rights=describe(),
    )
