"""Revocation: CRL and OCSP (public), revoke / hold / release and targeted recalls (operator).

The operator endpoints (``/v1/revocations``, ``/v1/recalls``) need an operator whose role
grants ``revocation.manage`` (session + CSRF header, or API token; ADR 0013).
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Annotated, Any

from cryptography.x509.ocsp import OCSPResponseStatus
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from birthright.ca.ocsp import MAX_REQUEST_BYTES, answer_status, unsuccessful
from birthright.observability import metrics
from birthright.operators.roles import Permission
from birthright.revocation.model import Reason, Revocation, Selection
from birthright.revocation.service import RevocationService
from birthright.server.backend import Backend
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import SERIAL, STATION_ID, WORK_ORDER_ID
from birthright.server.status_asgi import OCSP_MAX_AGE, crl_response

log = logging.getLogger(__name__)
router = APIRouter(tags=["revocation"])

REASONS = tuple(r.value for r in Reason)
NAME = r"^[A-Za-z0-9._ -]{1,64}$"
RECALL_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"  # noqa: S105 - a pattern, not a secret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RevokeBody(_Strict):
    serial: str = Field(pattern=SERIAL)
    reason: str = Field(description=f"RFC 5280 reason: {', '.join(REASONS)}.")


class SelectionBody(_Strict):
    product: str | None = Field(default=None, pattern=NAME)
    work_order_id: str | None = Field(default=None, pattern=WORK_ORDER_ID)
    site: str | None = Field(default=None, pattern=NAME)
    line: str | None = Field(default=None, pattern=NAME)
    station_id: str | None = Field(default=None, pattern=STATION_ID)
    serials: list[Annotated[str, Field(pattern=SERIAL)]] = Field(default=[], max_length=10_000)
    serial_first: str | None = Field(default=None, pattern=SERIAL)
    serial_last: str | None = Field(default=None, pattern=SERIAL)
    enrolled_since: AwareDatetime | None = None
    enrolled_until: AwareDatetime | None = None
    firmware_versions: list[Annotated[str, Field(pattern=NAME)]] = Field(
        default=[], max_length=100, description="Firmware versions last reported by the unit."
    )
    all: bool = Field(default=False, description="Required, alone, to select every unit.")

    def to_domain(self) -> Selection:
        return Selection(
            **{
                **self.model_dump(),
                "serials": tuple(self.serials),
                "firmware_versions": tuple(self.firmware_versions),
            }
        )


class PreviewBody(_Strict):
    selection: SelectionBody
    reason: str = Field(default="keyCompromise", description=f"One of {', '.join(REASONS)}.")


class RevocationResponse(BaseModel):
    serial: str
    cert_serial: str
    reason: str
    revoked_at: datetime
    status: str


class StatusResponse(BaseModel):
    serial: str
    cert_serial: str
    status: str
    reason: str | None = None
    revoked_at: datetime | None = None
    recall_id: str | None = None


class PreviewResponse(BaseModel):
    recall_id: str
    token: str = Field(description="Pass to /v1/recalls/{token}/execute; shown only once.")
    count: int
    sample: list[str]
    selection: dict[str, Any]
    reason: str
    expires_at: datetime


class RecallResponse(BaseModel):
    recall_id: str
    revoked: int
    reason: str


def _revocation(r: Revocation) -> RevocationResponse:
    return RevocationResponse(
        serial=r.serial,
        cert_serial=r.cert_serial,
        reason=r.reason.value,
        revoked_at=r.revoked_at,
        status=r.reason.device_status,
    )


# -- public: CRL and OCSP -----------------------------------------------------------------


@router.get(
    "/crl/issuing.crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}},
    summary="Full CRL of the issuing CA (DER)",
)
def crl(backend: BackendDep, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return crl_response(backend.revocation, if_none_match)


def _ocsp_response(der: bytes) -> Response:
    metrics.ocsp_answer(answer_status(der)).inc()
    return Response(
        der,
        media_type="application/ocsp-response",
        headers={"Cache-Control": f"max-age={OCSP_MAX_AGE}"},
    )


# The OCSP routes are async on purpose, and take the backend without a (sync, so threaded)
# dependency: an answer is one indexed read and, mostly, a cached signed response, cheaper
# than a hand-off to the thread pool; and one thread per process then holds the status
# reader's one connection (db/status_reader.py).


def _revocation_service(request: Request) -> RevocationService:
    backend: Backend = request.app.state.backend
    return backend.revocation


@router.get(
    "/ocsp/{request_b64:path}",
    response_class=Response,
    # A path with control characters matches no route at all: a JSON 404, not an OCSP answer.
    responses={200: {"content": {"application/ocsp-response": {}}}, **errors(404)},
    summary="OCSP (RFC 6960 GET)",
)
async def ocsp_get(request: Request, request_b64: str) -> Response:
    try:
        der = base64.b64decode(request_b64, validate=True)
    except (binascii.Error, ValueError):
        return _ocsp_response(unsuccessful(OCSPResponseStatus.MALFORMED_REQUEST))
    return _ocsp_response(_revocation_service(request).ocsp(der))


@router.post(
    "/ocsp",
    response_class=Response,
    responses={200: {"content": {"application/ocsp-response": {}}}},
    summary="OCSP (RFC 6960 POST, application/ocsp-request)",
    openapi_extra={"requestBody": {"content": {"application/ocsp-request": {}}}},
)
async def ocsp_post(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_REQUEST_BYTES:
        body = b""
    return _ocsp_response(_revocation_service(request).ocsp(body))


def _events_written(request: Request) -> None:
    """Wake this process's event dispatcher: the change just committed its events."""
    wake = getattr(request.app.state, "event_wake", None)
    if wake is not None:
        wake()


# -- operator: revoke, hold, release, recall (no operator auth yet: see module docstring) --


@router.post(
    "/v1/revocations",
    status_code=201,
    response_model=RevocationResponse,
    responses={**errors(400, 404, 409, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.REVOCATION_MANAGE)],
)
def revoke(backend: BackendDep, body: RevokeBody, request: Request) -> RevocationResponse:
    """Revoke one unit (operator: revocation.manage)."""
    done = backend.revocation.revoke(body.serial, Reason.parse(body.reason))
    _events_written(request)
    return _revocation(done)


@router.post(
    "/v1/revocations/{serial}/release",
    response_model=StatusResponse,
    responses={**errors(404, 409, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.REVOCATION_MANAGE)],
)
def release(
    backend: BackendDep, request: Request, serial: str = Path(pattern=SERIAL)
) -> StatusResponse:
    """Lift a certificateHold (operator: revocation.manage)."""
    device = backend.revocation.release(serial)
    _events_written(request)
    return StatusResponse(serial=device.serial, cert_serial=device.cert_serial, status="active")


@router.get(
    "/v1/devices/{serial}/status", response_model=StatusResponse, responses=errors(404, 422)
)
def device_status(backend: BackendDep, serial: str = Path(pattern=SERIAL)) -> StatusResponse:
    device, revocation = backend.revocation.status(serial)
    return StatusResponse(
        serial=device.serial,
        cert_serial=device.cert_serial,
        status=device.status,
        reason=revocation.reason.value if revocation else None,
        revoked_at=revocation.revoked_at if revocation else None,
        recall_id=revocation.recall_id if revocation else None,
    )


@router.post(
    "/v1/recalls/preview",
    status_code=201,
    response_model=PreviewResponse,
    responses={**errors(400, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.REVOCATION_MANAGE)],
)
def preview(backend: BackendDep, body: PreviewBody) -> PreviewResponse:
    """Count and sample a recall; the token executes exactly this set (operator)."""
    p = backend.revocation.preview(body.selection.to_domain(), Reason.parse(body.reason))
    return PreviewResponse(
        recall_id=p.recall_id,
        token=p.token,
        count=p.count,
        sample=list(p.sample),
        selection=p.selection.as_dict(),
        reason=p.reason.value,
        expires_at=p.expires_at,
    )


@router.post(
    "/v1/recalls/{token}/execute",
    response_model=RecallResponse,
    responses={**errors(404, 409, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.REVOCATION_MANAGE)],
)
def execute(
    backend: BackendDep, request: Request, token: str = Path(pattern=RECALL_TOKEN_PATTERN)
) -> RecallResponse:
    """Revoke the previewed set in one transaction (operator)."""
    result = backend.revocation.execute(token)
    metrics.REVOCATIONS.labels("recall").inc(result.revoked)
    _events_written(request)
    return RecallResponse(
        recall_id=result.recall_id, revoked=result.revoked, reason=result.reason.value
    )
