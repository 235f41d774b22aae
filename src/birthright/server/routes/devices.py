"""Device lookups."""

from __future__ import annotations

from fastapi import APIRouter, Path

from birthright.errors import NotFoundError
from birthright.operators.roles import Permission
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.pem import cert_pem
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import SERIAL, DeviceResponse

router = APIRouter(
    prefix="/v1/devices",
    tags=["devices"],
    dependencies=[require(Permission.DEVICES_VIEW)],
    responses=OPERATOR_ERRORS,
)


@router.get(
    "/status-counts",
    summary="Units per status, by work order and by the firmware version they last proved",
)
def status_counts(backend: BackendDep) -> dict[str, list[dict[str, object]]]:
    return backend.operations.status_counts()


@router.get("/{serial}", response_model=DeviceResponse, responses=errors(404, 422))
def device(backend: BackendDep, serial: str = Path(pattern=SERIAL)) -> DeviceResponse:
    d = backend.operations.device(serial)
    if d is None:
        raise NotFoundError(f"no enrolled device has serial {serial!r}", code="device_unknown")
    return DeviceResponse(
        serial=d.serial,
        chip_id=d.chip_id,
        product=d.product,
        station_id=d.station_id,
        work_order_id=d.work_order_id,
        status=d.status,
        enrolled_at=d.enrolled_at,
        cert_serial=d.cert_serial,
        key_fingerprint=d.key_fingerprint,
        certificate=cert_pem(d.certificate),
        se_proof=d.se_proof,
    )
