"""The operator guard: a console session (cookie + CSRF header) or an API bearer token,
checked against the one rights table (``operators.roles.RIGHTS``), refusals audited.

Station endpoints (mutual TLS + signed requests) and device endpoints (device-auth tokens,
attestation, CRL/OCSP) do not pass through here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request

from birthright.operators.model import (
    Operator,
    OperatorForbidden,
    OperatorUnauthenticated,
    Principal,
)
from birthright.operators.roles import Permission, Role
from birthright.operators.tokens import csrf_matches
from birthright.server.backend import Backend
from birthright.server.schemas import ErrorBody

SESSION_COOKIE = "birthright_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Stands in for the caller when operator authentication is switched off (logic tests only).
UNGUARDED = Principal(
    Operator(name="unguarded", role=Role.ADMIN, created_at=datetime(2000, 1, 1, tzinfo=UTC)),
    "none",
)

OPERATOR_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "operator_unauthenticated: no valid console session or API token "
        "(send `Authorization: Bearer brt_...` or the session cookie)",
    },
    403: {
        "model": ErrorBody,
        "description": "operator_forbidden: the operator's role lacks this right; "
        "csrf_invalid: a session-authenticated change without its X-CSRF-Token",
    },
}


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def authenticate(
    request: Request, *, form_csrf: str | None = None, bearer_allowed: bool = True
) -> Principal:
    """The calling operator, from a bearer token or a session cookie (+ CSRF on changes)."""
    backend = _backend(request)
    operators = backend.operators
    header = request.headers.get("authorization") if bearer_allowed else None
    try:
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise OperatorUnauthenticated("the Authorization header must be Bearer <token>")
            return operators.token(token.strip())
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise OperatorUnauthenticated("log in, or send an operator API token")
        principal = operators.session(session_id)
    except OperatorUnauthenticated as e:
        operators.audit_refusal(e.code, path=request.url.path, client=_client(request))
        raise
    if request.method not in SAFE_METHODS:
        presented = form_csrf or request.headers.get(CSRF_HEADER)
        if not csrf_matches(session_id, presented):
            operators.audit_refusal(
                "csrf_invalid", operator=principal.operator.name, path=request.url.path
            )
            raise OperatorForbidden(
                "a change made with a session needs its CSRF token", code="csrf_invalid"
            )
    request.state.principal = principal
    return principal


def authorize(request: Request, principal: Principal, permission: Permission) -> None:
    """Refuse (403, audited) unless the principal's role grants ``permission``; audit a change."""
    operators = _backend(request).operators
    action = f"{request.method} {request.url.path}"
    if not principal.operator.can(permission):
        operators.audit_action(principal, action, outcome="refused", permission=permission.value)
        raise OperatorForbidden(
            f"the {principal.operator.role.value} role may not do this ({permission.value})"
        )
    if request.method not in SAFE_METHODS:
        operators.audit_action(principal, action, permission=permission.value)


def require(permission: Permission) -> Any:
    """A route dependency: the caller must be an operator whose role grants ``permission``."""

    def guard(request: Request) -> Principal:
        if not _backend(request).operator_auth:
            return UNGUARDED
        principal = authenticate(request)
        authorize(request, principal, permission)
        return principal

    return Depends(guard)
