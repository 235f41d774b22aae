"""Challenge and attestation, called by devices."""

from __future__ import annotations

import base64

from fastapi import APIRouter

from birthright.observability import metrics
from birthright.server.pem import b64decode
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import (
    AttestationBody,
    AttestationResponse,
    ChallengeRequest,
    ChallengeResponse,
)

router = APIRouter(prefix="/v1/attestations", tags=["attestation"])


@router.post(
    "/challenges",
    response_model=ChallengeResponse,
    status_code=201,
    responses=errors(404, 413, 422),
    summary="Issue a single-use nonce with a short lifetime",
)
def challenge(body: ChallengeRequest, backend: BackendDep) -> ChallengeResponse:
    c = backend.attestation.challenge(body.serial)
    return ChallengeResponse(nonce=c.nonce, serial=c.serial, expires_at=c.expires_at)


@router.post(
    "",
    response_model=AttestationResponse,
    responses=errors(400, 413, 422),
    summary="Verify evidence; a signed result with a reason per check",
)
def attest(body: AttestationBody, backend: BackendDep) -> AttestationResponse:
    result = backend.attestation.verify(
        evidence=b64decode(body.evidence, field="evidence"),
        signature=None if body.signature is None else b64decode(body.signature, field="signature"),
        chain=[c.encode() for c in body.chain],
    )
    failing = next((f.id for f in result.findings if f.status != "pass"), "ok")
    metrics.ATTESTATIONS.labels(result.verdict, failing).inc()
    token = base64.b64encode(result.token).decode() if result.token else None
    return AttestationResponse.model_validate({**result.as_dict(), "result_token": token})
