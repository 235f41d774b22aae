"""Console plumbing: templates, the page guard (session + CSRF), forms, HTML errors."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from birthright.errors import BirthrightError, InputError, TransientError
from birthright.operators.model import OperatorUnauthenticated, Principal
from birthright.operators.roles import Permission
from birthright.server.backend import Backend
from birthright.server.operator_auth import (
    CSRF_FIELD,
    SAFE_METHODS,
    SESSION_COOKIE,
    authenticate,
    authorize,
)

PREFIX = "/console"
MAX_FORM_BYTES = 64 * 1024
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: No script at all; styles from our own path; nothing framed; forms post only to us.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

NAV = [
    ("Overview", "", Permission.OVERVIEW_VIEW),
    ("Devices", "/devices", Permission.DEVICES_VIEW),
    ("Work orders", "/work-orders", Permission.WORK_ORDERS_VIEW),
    ("Reports", "/reports", Permission.REPORTS_VIEW),
    ("Recall", "/recall", Permission.REVOCATION_MANAGE),
    ("Audit log", "/audit", Permission.AUDIT_VIEW),
    ("Operators", "/operators", Permission.OPERATORS_MANAGE),
]


class LoginRequired(Exception):
    """A console page was asked for without a live session: go to the login page."""


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each field."""
    if request.method in SAFE_METHODS:
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InputError("the form is too large", code="form_too_large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


Form = Annotated[dict[str, str], Depends(_form)]


def page(request: Request, permission: Permission, form: dict[str, str] | None = None) -> Principal:
    """The session's operator, if its role grants ``permission`` (a change also needs the
    form's CSRF token). No session: LoginRequired. Refusals are audited by the guard."""
    if request.method in SAFE_METHODS and not request.cookies.get(SESSION_COOKIE):
        raise LoginRequired  # a first visit, not a refusal: straight to the login page
    try:
        principal = authenticate(
            request, form_csrf=(form or {}).get(CSRF_FIELD), bearer_allowed=False
        )
    except OperatorUnauthenticated as e:
        raise LoginRequired from e
    authorize(request, principal, permission)
    return principal


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    nav = [
        (label, PREFIX + path)
        for label, path, needed in NAV
        if principal is not None and principal.operator.can(needed)
    ]
    response = templates.TemplateResponse(
        request,
        template,
        {"me": principal, "nav": nav, "prefix": PREFIX, "csrf_field": CSRF_FIELD, **context},
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(PREFIX + path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: Request, error: BirthrightError) -> Response:
    """A refused console request: the same stable code as the API, in a page."""
    principal = getattr(request.state, "principal", None)
    return render(
        request,
        "error.html",
        principal,
        status_code=error.http_status,
        code=error.code,
        message=error.message,
    )


class ConsoleRoute(APIRoute):
    """Console routes answer in HTML: no session → the login page; a refusal → an error
    page with the API's stable code and status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired:
                return redirect("/login")
            except BirthrightError as e:
                if e.http_status >= 500 and not isinstance(e, TransientError):
                    raise
                return error_page(request, e)

        return handler
