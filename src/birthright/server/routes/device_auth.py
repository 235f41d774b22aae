"""Device authentication: a challenge, then a token signed by the device's secure element."""

from __future__ import annotations

from fastapi import APIRouter

from birthright.server.device_schemas import (
    DeviceAuthBody,
    DeviceAuthChallengeRequest,
    DeviceAuthChallengeResponse,
    DeviceSessionResponse,
)
from birthright.server.pem import b64decode
from birthright.server.routes import BackendDep, errors

router = APIRouter(prefix="/v1/device-auth", tags=["device authentication"])


@router.post(
    "/challenges",
    response_model=DeviceAuthChallengeResponse,
    status_code=201,
    responses=errors(404, 413, 422),
    summary="Issue a single-use device-auth nonce with a short lifetime",
)
def challenge(body: DeviceAuthChallengeRequest, backend: BackendDep) -> DeviceAuthChallengeResponse:
    c = backend.device_auth.challenge(body.serial)
    return DeviceAuthChallengeResponse(
        nonce=c.nonce,
        serial=c.serial,
        audience=backend.device_auth.audience,
        expires_at=c.expires_at,
    )


@router.post(
    "",
    response_model=DeviceSessionResponse,
    responses=errors(400, 401, 403, 413, 422),
    summary="Authenticate a device: chain, status, nonce, audience, time and signature",
    description="Refusals: `device_auth_expired`, `device_auth_replayed`, "
    "`device_auth_nonce_unknown`, `device_auth_audience`, `device_auth_signature_invalid`, "
    "`device_untrusted`, `device_unknown` (401); `device_revoked` (403); "
    "`device_auth_malformed`, `chain_malformed` (400). Every refusal is audited.",
)
def authenticate(body: DeviceAuthBody, backend: BackendDep) -> DeviceSessionResponse:
    session = backend.device_auth.authenticate(
        token=b64decode(body.token, field="token"), chain=[c.encode() for c in body.chain]
    )
    return DeviceSessionResponse(
        serial=session.serial,
        product=session.product,
        audience=session.audience,
        authenticated_at=session.authenticated_at,
        expires_at=session.expires_at,
    )
