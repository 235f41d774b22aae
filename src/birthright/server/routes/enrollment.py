"""Serial reservation and enrollment, called by provisioning stations."""

from __future__ import annotations

from fastapi import APIRouter, Response

from birthright.enrollment.model import EnrollmentRequest
from birthright.server.pem import cert_pem, pem_or_b64
from birthright.server.routes import BackendDep, CallingStation, errors, station_of
from birthright.server.schemas import (
    EnrollmentBody,
    EnrollmentResponse,
    SeChallengeBody,
    SeChallengeResponse,
    SerialRequest,
    SerialResponse,
)
from birthright.types import ChipId, ProductSerial

router = APIRouter(prefix="/v1", tags=["enrollment"])


@router.post(
    "/serials",
    response_model=SerialResponse,
    responses=errors(400, 403, 409, 413, 422),
    summary="Reserve the next product serial for a chip (idempotent per chip)",
)
def reserve_serial(
    body: SerialRequest, backend: BackendDep, calling: CallingStation
) -> SerialResponse:
    r = backend.enrollment.reserve_serial(
        station_of(calling, body.station_id), ChipId(body.chip_id), body.work_order_id
    )
    return SerialResponse(
        serial=r.serial,
        work_order_id=r.work_order_id,
        chip_id=r.chip_id,
        station_id=r.station_id,
        reserved_at=r.reserved_at,
    )


@router.post(
    "/se-challenges",
    response_model=SeChallengeResponse,
    responses=errors(400, 403, 409, 413, 422),
    summary="A fresh genuine-SE challenge for a chip (TPM credential activation)",
)
def se_challenge(
    body: SeChallengeBody, backend: BackendDep, calling: CallingStation
) -> SeChallengeResponse:
    challenge = backend.enrollment.se_challenge(
        station_of(calling, body.station_id),
        ChipId(body.chip_id),
        body.work_order_id,
        body.request.model_dump(),
    )
    return SeChallengeResponse(**challenge)


@router.post(
    "/enrollments",
    response_model=EnrollmentResponse,
    status_code=201,
    responses={200: {"model": EnrollmentResponse}, **errors(400, 403, 409, 413, 422)},
    summary="Enroll a unit: check the CSR, issue its certificate, record it (idempotent)",
)
def enroll(
    body: EnrollmentBody, response: Response, backend: BackendDep, calling: CallingStation
) -> EnrollmentResponse:
    result = backend.enrollment.enroll(
        EnrollmentRequest(
            station_id=station_of(calling, body.station_id),
            work_order_id=body.work_order_id,
            serial=ProductSerial(body.serial),
            chip_id=ChipId(body.chip_id),
            csr=pem_or_b64(body.csr, field="csr"),
            se_proof=body.se_proof.model_dump() if body.se_proof is not None else None,
        )
    )
    if not result.created:
        response.status_code = 200
    return EnrollmentResponse(
        serial=result.device.serial,
        chip_id=result.device.chip_id,
        certificate=cert_pem(result.device.certificate),
        chain=[cert_pem(c) for c in result.chain],
        created=result.created,
    )
