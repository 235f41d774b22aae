"""Request and response bodies of device authentication and entitlements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from birthright.server.schemas import SERIAL, Strict


class DeviceAuthChallengeRequest(Strict):
    serial: str = Field(pattern=SERIAL)


class DeviceAuthChallengeResponse(BaseModel):
    nonce: str
    serial: str
    audience: str = Field(description="The `aud` the token must name.")
    expires_at: datetime


class DeviceAuthBody(Strict):
    token: str = Field(
        max_length=11000,
        description="Base64 COSE_Sign1 (tag 18, ES256) over the CBOR claims "
        "{nonce, serial, aud, iat, exp}, exp - iat at most 300 s, signed by the device's SE key.",
    )
    chain: list[str] = Field(
        min_length=1, max_length=4, description="Device certificate first, then its CAs; PEM."
    )


class DeviceSessionResponse(BaseModel):
    serial: str
    product: str
    audience: str
    authenticated_at: datetime
    expires_at: datetime = Field(description="Trust the device until then (the token's exp).")


class ClaimBody(Strict):
    """A claim: the terms, the owner, and a fresh device-auth token from the unit itself."""

    serial: str = Field(pattern=SERIAL)
    plan: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    kind: Literal["warranty", "subscription"]
    starts_on: date
    ends_on: date
    owner: str = Field(min_length=1, max_length=128)
    token: str = Field(max_length=11000, description="A device-auth token (see /v1/device-auth).")
    chain: list[str] = Field(min_length=1, max_length=4, description="PEM certificates.")


class TransferBody(Strict):
    from_owner: str = Field(min_length=1, max_length=128)
    to_owner: str = Field(min_length=1, max_length=128)
    transfer_secret: str = Field(
        min_length=1,
        max_length=128,
        description="The current owner's transfer secret (from the claim or the last transfer).",
    )


class EntitlementResponse(BaseModel):
    serial: str
    plan: str
    kind: str
    starts_on: date
    ends_on: date
    owner: str
    claimed_at: datetime
    status: Literal["pending", "active", "expired", "suspended"] = Field(
        description="`suspended` while the device is revoked or on hold."
    )


class GrantedResponse(EntitlementResponse):
    transfer_secret: str = Field(
        description="The owner's one-time secret to transfer this entitlement; shown only "
        "once, stored hashed, replaced by each transfer."
    )


class EntitlementList(BaseModel):
    entitlements: list[EntitlementResponse]
