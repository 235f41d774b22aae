"""Operations endpoints: liveness, readiness and Prometheus metrics.

``/healthz`` (in the app factory) answers while the process runs; ``/readyz`` while it can do
its work (database
reachable, schema at head, CA key usable), else 503 with the failing part's code;
``/metrics`` is the Prometheus exposition, for addresses in ``metrics_allow`` only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from birthright.db.observability import open_quota_use
from birthright.observability import metrics
from birthright.observability.http import client_allowed
from birthright.observability.readiness import Observability
from birthright.server.backend import Backend
from birthright.server.schemas import ErrorBody

router = APIRouter(tags=["operations"])


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _collector(request: Request) -> metrics.QuotaCollector:
    found: metrics.QuotaCollector | None = getattr(request.app.state, "quota_collector", None)
    if found is None:
        backend = _backend(request)
        sessions = backend.sessions
        found = metrics.QuotaCollector(
            lambda: open_quota_use(sessions), ttl=backend.observability.metrics_cache_seconds
        )
        request.app.state.quota_collector = found
    return found


@router.get(
    "/readyz",
    responses={
        200: {"description": "ready: every check passed"},
        503: {"model": ErrorBody, "description": "not ready; `code` names the failing part"},
    },
    summary="Readiness: database reachable, schema at head, CA key usable",
)
async def readyz(request: Request) -> JSONResponse:
    ops: Observability = _backend(request).observability
    checks = await run_in_threadpool(ops.readiness.check_all)
    listed: list[dict[str, Any]] = [
        {"name": c.name, "ok": c.ok, **({"code": c.code, "message": c.message} if not c.ok else {})}
        for c in checks
    ]
    failed = [c for c in checks if not c.ok]
    if not failed:
        return JSONResponse({"status": "ready", "checks": listed})
    first = failed[0]
    return JSONResponse(
        {"code": first.code, "message": first.message, "checks": listed},
        status_code=503,
        headers={"Retry-After": "5"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {metrics.CONTENT_TYPE: {}}},
        403: {"model": ErrorBody, "description": "metrics_forbidden: not an allowed scraper"},
    },
    summary="Prometheus metrics (allowed scraper addresses only)",
)
async def prometheus(request: Request) -> Response:
    ops: Observability = _backend(request).observability
    if not client_allowed(request.scope, ops.metrics_allow):
        return JSONResponse(
            {"code": "metrics_forbidden", "message": "this address may not read the metrics"},
            status_code=403,
        )
    collector = _collector(request)
    body = await run_in_threadpool(metrics.exposition, [collector])
    return Response(body, media_type=metrics.CONTENT_TYPE)
