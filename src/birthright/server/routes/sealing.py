"""Sealing a payload to one device; a device's key-agreement key (ADR 0010).

``POST /v1/devices/{serial}/sealed`` is an operator endpoint (``devices.seal``, admin only;
ADR 0013). The key-agreement key registration is authenticated by the device's identity
signature.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from birthright.errors import InputError
from birthright.operators.roles import Permission
from birthright.seal.envelope import MAX_PLAINTEXT
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import SERIAL

router = APIRouter(prefix="/v1/devices", tags=["sealing"])
PURPOSE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
B64 = r"^[A-Za-z0-9+/=]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SealBody(_Strict):
    purpose: str = Field(pattern=PURPOSE, description="What the payload is for, e.g. wifi.")
    payload: str = Field(
        pattern=B64, max_length=(MAX_PLAINTEXT * 4) // 3 + 4, description="Base64 plaintext."
    )


class SealResponse(BaseModel):
    serial: str
    purpose: str
    envelope: str = Field(description="Envelope v1 (ADR 0010), base64.")
    key: str = Field(description="identity | key-agreement")


class KaKeyBody(_Strict):
    public_key: str = Field(pattern=B64, max_length=400, description="DER SPKI, base64.")
    signature: str = Field(
        pattern=B64, max_length=200, description="Identity-key ECDSA over the statement, base64."
    )


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"{what} is not base64", code="bad_base64") from e


@router.post(
    "/{serial}/sealed",
    response_model=SealResponse,
    responses={**errors(400, 403, 404, 409, 422), **OPERATOR_ERRORS},
    summary="Seal a payload that only this device's secure element can open",
    dependencies=[require(Permission.SEAL)],
)
def seal_to_device(
    backend: BackendDep, body: SealBody, serial: str = Path(pattern=SERIAL)
) -> SealResponse:
    payload = _b64(body.payload, "the payload")
    envelope, key = backend.sealing.seal(serial, body.purpose, payload)
    return SealResponse(
        serial=serial,
        purpose=body.purpose,
        envelope=base64.b64encode(envelope.to_bytes()).decode(),
        key=key,
    )


@router.put(
    "/{serial}/key-agreement-key",
    status_code=204,
    responses=errors(400, 403, 404, 422),
    summary="Record the device's key-agreement key, signed by its identity key",
)
def register_ka_key(
    backend: BackendDep, body: KaKeyBody, serial: str = Path(pattern=SERIAL)
) -> None:
    backend.sealing.register_ka_key(
        serial, _b64(body.public_key, "the public key"), _b64(body.signature, "the signature")
    )
