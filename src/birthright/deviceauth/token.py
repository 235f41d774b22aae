"""The device-auth token: a COSE_Sign1 (ES256) over a small CBOR claim map. Parsed once, strictly.

Claims (text keys, deterministic CBOR): ``nonce`` (a challenge from the service), ``serial``,
``aud`` (the relying service), ``iat`` and ``exp`` (integer UNIX seconds, ``exp - iat`` at most
``MAX_LIFETIME``). The signature is made by the secure element (``se.sign``); this module never
sees a private key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cbor2

from birthright.attest.cose import DerSigner, Sign1, parse_sign1, require_canonical, sign1
from birthright.attest.cose import strict_loads as _strict_loads
from birthright.errors import InputError

MAX_LIFETIME = timedelta(minutes=5)
CLAIMS = frozenset({"nonce", "serial", "aud", "iat", "exp"})
_MAX_TEXT = 128


class DeviceAuthMalformed(InputError):
    code = "device_auth_malformed"


@dataclass(frozen=True)
class DeviceAuthClaims:
    nonce: str
    serial: str
    audience: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class DeviceAuthToken:
    """A structurally valid token; the signature, chain, nonce and times are not yet checked."""

    sign1: Sign1
    claims: DeviceAuthClaims


def build_token(
    *, nonce: str, serial: str, audience: str, now: datetime, sign: DerSigner, lifetime: int = 120
) -> bytes:
    """A token signed by ``sign`` (a SecureElement's ``sign``), valid ``lifetime`` seconds."""
    iat = int(now.timestamp())
    claims = {"nonce": nonce, "serial": serial, "aud": audience, "iat": iat, "exp": iat + lifetime}
    return sign1(cbor2.dumps(claims, canonical=True), sign)


def parse_token(data: bytes) -> DeviceAuthToken:
    """Parse or raise ``DeviceAuthMalformed`` (a token too large raises ``EvidenceTooLarge``)."""
    try:
        token = parse_sign1(data)
        claims = _strict_loads(token.payload, "the claims")
        require_canonical(claims, token.payload, "the claims")
    except InputError as e:
        if e.http_status == 413:
            raise
        raise DeviceAuthMalformed(f"the device-auth token is malformed: {e.message}") from e
    return DeviceAuthToken(token, _claims(claims))


def _claims(claims: object) -> DeviceAuthClaims:
    if not isinstance(claims, Mapping) or set(claims) != CLAIMS:
        raise DeviceAuthMalformed(f"the claims must be exactly {sorted(CLAIMS)}")
    texts = [claims["nonce"], claims["serial"], claims["aud"]]
    if not all(isinstance(t, str) and 1 <= len(t) <= _MAX_TEXT for t in texts):
        raise DeviceAuthMalformed("nonce, serial and aud must be short text strings")
    iat, exp = claims["iat"], claims["exp"]
    if type(iat) is not int or type(exp) is not int or not 0 < iat < exp < 2**40:
        raise DeviceAuthMalformed("iat and exp must be integer seconds with iat < exp")
    if exp - iat > MAX_LIFETIME.total_seconds():
        raise DeviceAuthMalformed("a device-auth token may live five minutes at most")
    return DeviceAuthClaims(
        nonce=texts[0],
        serial=texts[1],
        audience=texts[2],
        issued_at=datetime.fromtimestamp(iat, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
    )
