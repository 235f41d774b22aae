"""The device side of device authentication: fetch a nonce, sign a token on chip, present it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from birthright.device.agent import device_serial
from birthright.deviceauth.token import build_token
from birthright.se.base import SecureElement
from birthright.station.client import BackendClient


def chain_pem(se: SecureElement) -> list[str]:
    return [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]


def sign_token(
    se: SecureElement, *, nonce: str, audience: str, now: datetime, lifetime: int = 120
) -> bytes:
    """A device-auth token for ``audience``, signed by the chip's identity key."""
    return build_token(
        nonce=nonce,
        serial=device_serial(se),
        audience=audience,
        now=now,
        sign=se.sign,
        lifetime=lifetime,
    )


def fresh_token(se: SecureElement, backend: BackendClient, *, now: datetime) -> bytes:
    """A token bound to a fresh nonce from ``backend``, for ``backend``'s audience."""
    nonce, audience = backend.device_auth_challenge(device_serial(se))
    return sign_token(se, nonce=nonce, audience=audience, now=now)


def authenticate(se: SecureElement, backend: BackendClient, *, now: datetime) -> dict[str, Any]:
    """Authenticate to ``backend``; its session, or ``BackendRefused`` with the refusal code."""
    token = fresh_token(se, backend, now=now)
    return backend.device_authenticate(token=token, chain_pem=chain_pem(se))
