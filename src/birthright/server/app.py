"""The FastAPI application factory and its error contract.

Every error leaves as ``{"code": ..., "message": ...}`` with a stable code; nothing internal
(stack traces, SQL, key material) ever reaches a response body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from birthright import __version__
from birthright.errors import BirthrightError, RateLimitedError, TransientError
from birthright.events.dispatch import Dispatcher
from birthright.observability.http import Observe
from birthright.server import event_dispatch, report_schedule
from birthright.server.backend import Backend, utc_now
from birthright.server.console import actions as console_actions
from birthright.server.console import pages as console_pages
from birthright.server.event_dispatch import HttpPoster
from birthright.server.limits import ClientRateLimit
from birthright.server.routes import (
    attestation,
    ca,
    device_auth,
    devices,
    enrollment,
    entitlements,
    est,
    events,
    opcert,
    ops,
    products,
    reports,
    revocation,
    sealing,
    shipments,
)
from birthright.server.schemas import ErrorBody
from birthright.server.status_asgi import OcspFastPath

log = logging.getLogger(__name__)

#: The stable code of every answer given while the database cannot be reached.
DB_UNAVAILABLE = "db_unavailable"

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


def _unavailable() -> JSONResponse:
    response = error_response(
        503, DB_UNAVAILABLE, "the database is unavailable; nothing was recorded, retry shortly"
    )
    response.headers["Retry-After"] = "1"
    return response


class BodyLimit:
    """Refuse bodies over ``limit`` bytes, declared or streamed, before any handler runs."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        refused = started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is out: whatever the app makes of the cut body goes nowhere
            started = True
            await send(message)

        async def limited() -> Message:
            # Over the limit, answer 413 at once and tell the app the client went away: the
            # rest of the body is never read into memory, and no framework in between can
            # turn the cut into a 400 or a 500.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                if not started:
                    await self._refuse(scope, receive, send)
                refused = True
                return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


class CatchAll:
    """The last net: an exception no handler took becomes a JSON 500 (a cut body a 400).

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` would run every request through a task
    group and a memory stream, which cost more than some whole requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            # The client left, or BodyLimit cut its body and has already answered 413.
            if not started:
                response = error_response(
                    400, "client_disconnected", "the request body was cut off"
                )
                await response(scope, receive, send)
        except Exception:
            log.exception("unhandled error path=%s", scope.get("path", "")[:200])
            if not started:
                response = error_response(
                    500, "internal_error", "the server failed; nothing was changed"
                )
                await response(scope, receive, send)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Background work that lives as long as the service: the daily report schedule and the
    event dispatcher (ADR 0012)."""
    backend: Backend = app.state.backend
    running: list[tuple[asyncio.Task[None], asyncio.Event]] = []
    async with httpx.AsyncClient(follow_redirects=False) as client:
        if backend.report_schedule is not None:
            running.append(report_schedule.start(backend.reports, backend.report_schedule))
        if backend.event_policy is not None and backend.event_signer is not None:
            dispatcher = Dispatcher(
                store=backend.event_store,
                signer=backend.event_signer,
                post=HttpPoster(client),
                policy=backend.event_policy,
                clock=utc_now,
            )
            running.append(
                event_dispatch.start(dispatcher, backend.event_policy, app.state.event_wake)
            )
        try:
            yield
        finally:
            for _task, stop in running:
                stop.set()
            await asyncio.gather(*(task for task, _stop in running), return_exceptions=True)


def create_app(backend: Backend) -> FastAPI:
    app = FastAPI(
        title="birthright",
        version=__version__,
        description="Factory identity backend: enrollment, issuance, attestation.",
        # Any operation may meet the body limit, a rate limit or a database away.
        responses={
            400: {"model": None},
            413: {"model": ErrorBody, "description": "body_too_large"},
            429: {"model": ErrorBody, "description": "rate_limited (see Retry-After)"},
            503: {"model": ErrorBody, "description": "db_unavailable (see Retry-After)"},
        },
        lifespan=_lifespan,
    )
    app.state.backend = backend
    app.state.event_wake = event_dispatch.Wake()
    app.state.station_auth = backend.station_auth
    if backend.station_auth is None:
        log.warning("station authentication is OFF: station ids in request bodies are trusted")
    for router in (enrollment.router, attestation.router, devices.router, ca.router):
        app.include_router(router)
    app.include_router(revocation.router)
    app.include_router(products.router)
    app.include_router(reports.router)
    app.include_router(shipments.router)
    app.include_router(device_auth.router)
    app.include_router(entitlements.router)
    app.include_router(sealing.router)
    app.include_router(opcert.router)
    app.include_router(ops.router)
    app.include_router(est.router)
    app.include_router(console_pages.router)
    app.include_router(console_actions.router)
    app.include_router(events.router)

    @app.exception_handler(BirthrightError)
    async def _domain_error(_request: Request, exc: BirthrightError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.InterfaceError)
    @app.exception_handler(sa_exc.DisconnectionError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        # A dropped connection, a restarting server, an exhausted pool: the request did not
        # commit, the pool replaces dead connections (pre-ping), a retry will be answered.
        log.warning("database unavailable path=%s error=%s", request.url.path, type(exc).__name__)
        return _unavailable()

    @app.exception_handler(TransientError)
    async def _transient(_request: Request, exc: TransientError) -> JSONResponse:
        if isinstance(exc, RateLimitedError):
            response = error_response(429, exc.code, exc.message, retry_after=exc.retry_after)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if exc.code == DB_UNAVAILABLE:
            return _unavailable()
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return error_response(
            422, "validation_error", "the request body is not valid", problems=problems
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app.add_middleware(CatchAll)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Inside the body limit (and the rate limits), outside the catch-all middleware above.
    app.add_middleware(OcspFastPath, revocation=backend.revocation)
    app.add_middleware(BodyLimit, limit=backend.max_body_bytes)
    app.add_middleware(ClientRateLimit, limits=backend.limits)  # sheds floods first
    app.add_middleware(Observe)  # outermost: request ids, latency and refusals of every answer
    return app
