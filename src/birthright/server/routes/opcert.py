"""Operational certificates: a fresh factory-identity proof in, a short-lived certificate out.

The request authenticates itself: a CSR signed on chip by the enrolled identity key, carrying
a single-use nonce from ``POST /v1/attestations/challenges`` (ADR 0011).
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from birthright.server.routes import BackendDep, errors

router = APIRouter(tags=["operational certificates"])


class OpCertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csr: str = Field(max_length=16384, description="PKCS#10, PEM, signed by the identity key.")


class OpCertResponse(BaseModel):
    serial: str
    certificate: str = Field(description="PEM")
    issuer: str = Field(description="The operational CA certificate, PEM.")
    not_after: datetime


@router.post(
    "/v1/operational-certificates",
    response_model=OpCertResponse,
    status_code=201,
    responses=errors(400, 403, 404, 422),
    summary="Trade a fresh factory-identity proof for a short-lived operational certificate",
)
def issue(backend: BackendDep, body: OpCertBody) -> OpCertResponse:
    service = backend.operational
    cert = service.issue(body.csr.encode())
    [serial] = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return OpCertResponse(
        serial=str(serial.value),
        certificate=cert.public_bytes(Encoding.PEM).decode(),
        issuer=service.ca_cert.public_bytes(Encoding.PEM).decode(),
        not_after=cert.not_valid_after_utc,
    )


@router.get(
    "/v1/operational-ca",
    summary="The operational CA certificate (PEM)",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
)
def operational_ca(backend: BackendDep) -> Response:
    pem = backend.operational.ca_cert.public_bytes(Encoding.PEM)
    return Response(pem, media_type="application/x-pem-file")
