"""Console actions: log in and out, revoke, recall (preview, then confirm), work orders,
reports, operators. Each POST carries the session's CSRF token and is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from birthright.errors import InputError
from birthright.operators.model import OperatorUnauthenticated
from birthright.operators.roles import Permission, Role
from birthright.revocation.model import Reason, Selection
from birthright.server.console.pages import REASONS
from birthright.server.console.web import (
    ConsoleRoute,
    Form,
    backend_of,
    page,
    redirect,
    render,
)
from birthright.server.operator_auth import SESSION_COOKIE

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
P = Permission


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return render(request, "login.html", None, failed=None)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, form: Form) -> Response:
    backend = backend_of(request)
    client = request.client.host if request.client else ""
    try:
        _principal, session_id = backend.operators.login(
            form.get("name", "").strip(), form.get("password", ""), client=client
        )
    except OperatorUnauthenticated as e:
        return render(request, "login.html", None, status_code=401, failed=e)
    response = redirect("")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        httponly=True,
        secure=backend.secure_cookies,
        samesite="strict",
        path="/",
        max_age=int(backend.session_policy.absolute.total_seconds()),
    )
    return response


@router.post("/logout")
def logout(request: Request, form: Form) -> Response:
    page(request, P.OVERVIEW_VIEW, form)  # CSRF-checked: no logging people out from afar
    session_id = request.cookies.get(SESSION_COOKIE, "")
    backend_of(request).operators.logout(session_id)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/devices/{serial}/revoke")
def revoke(request: Request, serial: str, form: Form) -> Response:
    page(request, P.REVOCATION_MANAGE, form)
    backend_of(request).revocation.revoke(serial, Reason.parse(form.get("reason", "")))
    return redirect(f"/devices?q={serial}")


@router.post("/devices/{serial}/release")
def release(request: Request, serial: str, form: Form) -> Response:
    page(request, P.REVOCATION_MANAGE, form)
    backend_of(request).revocation.release(serial)
    return redirect(f"/devices?q={serial}")


def _selection(form: dict[str, str]) -> Selection:
    def field(name: str) -> str | None:
        value = form.get(name, "").strip()
        return value or None

    serials = tuple(s for s in form.get("serials", "").replace(",", " ").split() if s)
    firmware = tuple(s for s in form.get("firmware_versions", "").replace(",", " ").split() if s)
    return Selection(
        product=field("product"),
        work_order_id=field("work_order_id"),
        site=field("site"),
        line=field("line"),
        station_id=field("station_id"),
        serials=serials,
        serial_first=field("serial_first"),
        serial_last=field("serial_last"),
        firmware_versions=firmware,
    )


@router.post("/recall/preview", response_class=HTMLResponse)
def recall_preview(request: Request, form: Form) -> Response:
    me = page(request, P.REVOCATION_MANAGE, form)
    preview = backend_of(request).revocation.preview(
        _selection(form), Reason.parse(form.get("reason", "keyCompromise"))
    )
    return render(request, "recall.html", me, preview=preview, reasons=REASONS, form=form)


@router.post("/recall/confirm", response_class=HTMLResponse)
def recall_confirm(request: Request, form: Form) -> Response:
    me = page(request, P.REVOCATION_MANAGE, form)
    result = backend_of(request).revocation.execute(form.get("token", ""))
    return render(request, "recall.html", me, preview=None, result=result, reasons=REASONS, form={})


@router.post("/work-orders/{work_order_id}/status")
def work_order_status(request: Request, work_order_id: str, form: Form) -> Response:
    page(request, P.WORK_ORDERS_MANAGE, form)
    WorkOrders(backend_of(request).sessions).set_status(
        work_order_id, form.get("status", ""), now=datetime.now(UTC)
    )
    return redirect("/work-orders")


def _int(form: dict[str, str], name: str) -> int:
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise InputError(f"{name} must be a whole number", code="bad_form") from None


@router.post("/work-orders")
def open_work_order(request: Request, form: Form) -> Response:
    page(request, P.WORK_ORDERS_MANAGE, form)
    now = datetime.now(UTC)
    spec = WorkOrderSpec(
        work_order_id=form.get("work_order_id", "").strip(),
        product=form.get("product", "").strip(),
        site=form.get("site", "").strip(),
        line=form.get("line", "").strip(),
        quantity=_int(form, "quantity"),
        serial_prefix=form.get("serial_prefix", "").strip(),
        serial_first=_int(form, "serial_first"),
        serial_last=_int(form, "serial_last"),
        valid_from=now,
        valid_until=now + timedelta(days=_int(form, "days")),
    )
    WorkOrders(backend_of(request).sessions).open(spec, now=now)
    return redirect("/work-orders")


@router.post("/reports/generate")
def generate_report(request: Request, form: Form) -> Response:
    page(request, P.REPORTS_GENERATE, form)
    backend_of(request).reports.generate(datetime.now(UTC).date(), trigger="console")
    return redirect("/reports")


@router.post("/operators")
def add_operator(request: Request, form: Form) -> Response:
    me = page(request, P.OPERATORS_MANAGE, form)
    site, _, line = form.get("line", "").strip().partition("/")
    backend_of(request).operators.create(
        form.get("name", "").strip(),
        Role.parse(form.get("role", "")),
        form.get("password", ""),
        actor=me.operator.name,
        site=site or None,
        line=line or None,
    )
    return redirect("/operators")


@router.post("/operators/{name}/{change}")
def change_operator(request: Request, name: str, change: str, form: Form) -> Response:
    me = page(request, P.OPERATORS_MANAGE, form)
    if change not in ("disable", "enable"):
        raise InputError(f"unknown change {change!r}", code="bad_form")
    backend_of(request).operators.set_disabled(name, change == "disable", actor=me.operator.name)
    return redirect("/operators")
