"""Request and response bodies of device authentication and entitlements."""

from __future__ import annotations

from datetime import datetime

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
