"""The FastAPI application factory and its error contract.

Every error leaves as ``{"code": ..., "message": ...}`` with a stable code; nothing internal
(stack traces, SQL, key material) ever reaches a response body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from birthright import __version__
from birthright.errors import BirthrightError
from birthright.server.backend import Backend
from birthright.server.routes import attestation, ca, devices, enrollment, products, revocation

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


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

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(backend: Backend) -> FastAPI:
    app = FastAPI(
        title="birthright",
        version=__version__,
        description="Factory identity backend: enrollment, issuance, attestation.",
        responses={
            400: {"model": None},
        },
    )
    app.state.backend = backend
    app.state.station_auth = backend.station_auth
    if backend.station_auth is None:
        log.warning("station authentication is OFF: station ids in request bodies are trusted")
    for router in (enrollment.router, attestation.router, devices.router, ca.router):
        app.include_router(router)
    app.include_router(revocation.router)
    app.include_router(products.router)

    @app.exception_handler(BirthrightError)
    async def _domain_error(_request: Request, exc: BirthrightError) -> JSONResponse:
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

    @app.middleware("http")
    async def _unexpected(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            return await call_next(request)
        except Exception:
            log.exception("unhandled error path=%s", request.url.path)
            return error_response(500, "internal_error", "the server failed; nothing was changed")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Inside the body limit (and the rate limits), outside the catch-all middleware above.
    app.add_middleware(revocation.OcspFastPath, revocation=backend.revocation)
    app.add_middleware(BodyLimit, limit=backend.max_body_bytes)
    return app
