"""The HTTP edge of observability: request ids, latency, refusals and access logs.

:class:`Observe` is pure ASGI and the outermost layer, so every answer passes it exactly
once, whoever made it (a route, an exception handler, the body limit, the rate limits, the
OCSP fast path): that is where a refusal is counted, by the ``code`` of its JSON body.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from birthright.logs import RequestContext, enter_request, leave_request
from birthright.observability import metrics

access_log = logging.getLogger("birthright.access")

REQUEST_ID_HEADER = b"x-request-id"
#: An id a client (or the load balancer) sends is kept if it looks like this, else replaced.
REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
#: Error bodies are small; a longer one is not parsed for its code.
MAX_ERROR_BODY = 16 * 1024
#: Answered often and without interest: timed and counted, not written to the access log.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/ocsp"})

#: (method, route template) -> what a finished request of that route counts.
Outcome = Callable[[int, str | None], None]


def _enrollment(status: int, code: str | None) -> None:
    if status == 201:
        metrics.ENROLLMENTS.labels("issued").inc()
    elif status == 200:
        metrics.ENROLLMENTS.labels("repeated").inc()


def _device_auth(status: int, code: str | None) -> None:
    metrics.DEVICE_AUTH.labels("ok" if status < 400 else (code or f"http_{status}")).inc()


def _revocation(status: int, code: str | None) -> None:
    if status == 201:
        metrics.REVOCATIONS.labels("single").inc()


OUTCOMES: dict[tuple[str, str], Outcome] = {
    ("POST", "/v1/enrollments"): _enrollment,
    ("POST", "/v1/device-auth"): _device_auth,
    ("POST", "/v1/revocations"): _revocation,
}


def route_of(scope: Scope) -> str:
    """The route template that answered (bounded), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    path: str = scope.get("path", "")
    if path == "/ocsp" or path.startswith("/ocsp/"):
        return "/ocsp"  # the OCSP fast path answers before routing
    return "unmatched"


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            if REQUEST_ID.match(value):
                return bytes(value).decode("ascii")
            break
    return os.urandom(16).hex()


class Observe:
    """Outermost middleware: request id in and out, latency, refusals, access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context = RequestContext(request_id_of(scope))
        header = (REQUEST_ID_HEADER, context.request_id.encode("ascii"))
        status = 500
        is_json = False
        body = bytearray()

        async def observed_send(message: Message) -> None:
            nonlocal status, is_json
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                if status >= 400:
                    is_json = any(
                        k == b"content-type" and v.startswith(b"application/json")
                        for k, v in message["headers"]
                    )
            elif (
                is_json and message["type"] == "http.response.body" and len(body) <= MAX_ERROR_BODY
            ):
                body.extend(message.get("body", b""))
            await send(message)

        token = enter_request(context)
        try:
            await self.app(scope, receive, observed_send)
        finally:
            leave_request(token)
            elapsed = time.perf_counter() - started
            self._record(scope, context, status, bytes(body) if is_json else b"", elapsed)

    def _record(
        self, scope: Scope, context: RequestContext, status: int, error: bytes, elapsed: float
    ) -> None:
        route, method = route_of(scope), scope["method"]
        metrics.request_timer(route, method, status).observe(elapsed)
        code = _error_code(error) if status >= 400 else None
        if status >= 400:
            metrics.REFUSALS.labels(code or f"http_{status}", str(status)).inc()
        outcome = OUTCOMES.get((method, route))
        if outcome is not None:
            outcome(status, code)
        if route in QUIET_ROUTES and status < 500:
            return
        token = enter_request(context)
        try:
            access_log.info(
                "%s %s %d",
                method,
                route,
                status,
                extra={
                    "route": route,
                    "method": method,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "code": code,
                },
            )
        finally:
            leave_request(token)


def _error_code(body: bytes) -> str | None:
    if not body or len(body) > MAX_ERROR_BODY:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and len(code) <= 64 else None


Network = IPv4Network | IPv6Network


def client_allowed(scope: Scope, allowed: tuple[Network, ...]) -> bool:
    """Whether the connection's peer address is inside one of ``allowed``."""
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ip_address(client[0])
    except ValueError:
        return False
    return any(address in network for network in allowed)
