"""Shipped-unit manifests uploaded by logistics: the same import as ``birthright shipments
import``, all-or-nothing unless ``skip_bad``, idempotent, a refusal audited and nothing else.

An operator endpoint: the caller's role must grant ``shipments.import`` (ADR 0013).
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from birthright.errors import BirthrightError
from birthright.operators.roles import Permission
from birthright.reconcile.manifests import parse_shipments
from birthright.server.backend import Backend
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors

router = APIRouter(
    tags=["reconciliation"],
    dependencies=[require(Permission.SHIPMENTS_IMPORT)],
    responses=OPERATOR_ERRORS,
)


class BadRow(BaseModel):
    line: int
    code: str
    reason: str


class ShipmentImport(BaseModel):
    rows: int
    added: int
    already_present: int
    skipped: list[BadRow]
    sha256: str


@router.post(
    "/v1/shipments",
    response_model=ShipmentImport,
    responses=errors(400, 413, 422),
    summary="Import a shipped-unit manifest (CSV, JSON array or JSON lines in the body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_shipments(
    request: Request,
    backend: BackendDep,
    format: Annotated[Literal["csv", "json", "jsonl"], Query()] = "csv",
    skip_bad: Annotated[bool, Query(description="Import the good rows, report the bad.")] = False,
) -> ShipmentImport:
    body = await request.body()  # bounded by the service's body limit
    return await run_in_threadpool(_import, backend, body, format, skip_bad)


def _import(
    backend: Backend, body: bytes, format: Literal["csv", "json", "jsonl"], skip_bad: bool
) -> ShipmentImport:
    sha256 = hashlib.sha256(body).hexdigest()
    store = backend.manifests
    now = datetime.now(UTC)
    try:
        parsed = parse_shipments(io.BytesIO(body), format, max_bytes=backend.max_body_bytes)
    except BirthrightError as e:  # the file as a whole is refused
        store.record_refusal("shipments.import", sha256, e, now)
        raise
    result = store.import_shipments(parsed, source_sha256=sha256, skip_bad=skip_bad, now=now)
    return ShipmentImport(
        rows=result.rows,
        added=result.added,
        already_present=result.already_present,
        skipped=[BadRow(line=r.line, code=r.code, reason=r.reason) for r in result.skipped],
        sha256=sha256,
    )
