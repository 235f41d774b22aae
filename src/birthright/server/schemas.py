"""Request and response bodies. Pydantic lives here, at the HTTP edge, and nowhere deeper."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SERIAL = r"^[A-Za-z0-9._-]{1,64}$"
CHIP_ID = r"^[A-Za-z0-9._:-]{1,128}$"
STATION_ID = r"^[A-Za-z0-9._-]{1,64}$"
WORK_ORDER_ID = r"^[A-Za-z0-9._-]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")


class SerialRequest(Strict):
    station_id: str = Field(pattern=STATION_ID)
    work_order_id: str = Field(pattern=WORK_ORDER_ID)
    chip_id: str = Field(pattern=CHIP_ID)


class SerialResponse(BaseModel):
    serial: str
    work_order_id: str
    chip_id: str
    station_id: str
    reserved_at: datetime


class SeProofBody(BaseModel):
    """Proof that the identity key lives in a genuine secure element. ``kind`` selects the
    verifier; the other members belong to that kind (``pkcs11-vendor``: ``statement``,
    ``signature``, ``chain``)."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", examples=["pkcs11-vendor"])


class SeChallengeBody(Strict):
    station_id: str = Field(pattern=STATION_ID)
    work_order_id: str = Field(pattern=WORK_ORDER_ID)
    chip_id: str = Field(pattern=CHIP_ID)
    request: SeProofBody = Field(
        description="What the chip offers to be challenged on (``tpm``: ``ek_cert``, "
        "``ak_public``)."
    )


class SeChallengeResponse(BaseModel):
    """A challenge for the chip (``tpm``: ``credential_blob``, ``encrypted_secret``,
    ``token``, ``expires_at``); the chip's answer is the enrollment's ``se_proof``."""

    model_config = ConfigDict(extra="allow")
    kind: str


class EnrollmentBody(Strict):
    station_id: str = Field(pattern=STATION_ID)
    work_order_id: str = Field(pattern=WORK_ORDER_ID)
    serial: str = Field(pattern=SERIAL)
    chip_id: str = Field(pattern=CHIP_ID)
    csr: str = Field(max_length=16384, description="PKCS#10 request, PEM or base64 DER.")
    se_proof: SeProofBody | None = Field(
        default=None,
        description="Genuine-SE proof over the CSR's key; required for products whose "
        "policy demands it, checked whenever present.",
    )


class EnrollmentResponse(BaseModel):
    serial: str
    chip_id: str
    certificate: str = Field(description="Device certificate, PEM.")
    chain: list[str] = Field(description="Issuing CA then root, PEM each.")
    created: bool = Field(description="False when this repeated an earlier enrollment.")


class DeviceResponse(BaseModel):
    serial: str
    chip_id: str
    product: str
    station_id: str
    work_order_id: str | None
    status: str
    enrolled_at: datetime
    cert_serial: str
    key_fingerprint: str
    certificate: str
    se_proof: str | None = Field(
        default=None,
        description="How the key was proven to live in a genuine SE (pkcs11-vendor, tpm); "
        "null when it was not.",
    )


class ProductPolicyResponse(BaseModel):
    product: str
    require_genuine_se: bool
    updated_at: datetime | None


class PolicyHookResponse(BaseModel):
    product: str
    url: str
    timeout_ms: int
    #: The hook's answer-signing key, SubjectPublicKeyInfo PEM.
    public_key: str


class ChallengeRequest(Strict):
    serial: str = Field(pattern=SERIAL)


class ChallengeResponse(BaseModel):
    nonce: str
    serial: str
    expires_at: datetime


class AttestationBody(Strict):
    evidence: str = Field(
        max_length=11000,
        description="Evidence, base64: an EAT in a COSE_Sign1 (tag 18, ES256, at most 8 KiB) "
        "signed on chip; or the legacy v1 JSON evidence with a separate signature.",
    )
    signature: str | None = Field(
        default=None,
        max_length=512,
        description="Legacy v1 evidence only: ECDSA-SHA256 signature, base64 DER. "
        "Omit it for EAT evidence, which carries its signature.",
    )
    chain: list[str] = Field(min_length=1, max_length=4, description="PEM certificates.")


class CheckResult(BaseModel):
    check: str
    status: Literal["pass", "fail", "indeterminate"]
    id: str
    message: str


class AttestationResponse(BaseModel):
    serial: str
    verdict: Literal["pass", "fail", "indeterminate"]
    status: Literal["affirming", "warning", "contraindicated"] = Field(
        description="EAR appraisal status: affirming needs identity and firmware to pass."
    )
    checks: list[CheckResult]
    result_token: str | None = Field(
        default=None,
        description="The backend's signed result: a COSE_Sign1 (ES256), base64. Verify it "
        "with the backend's attestation result public key.",
    )
