"""Open an envelope with the ECDH running inside a secure element (RFC 9180 receiver).

``cryptography``'s HPKE wants a private key object; the device key never leaves its chip, so
the receiver side of DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM is written out
here around one call into the chip: ``Z = ECDH(device key, ephemeral key)``. Z and every key
derived from it stay in local variables: never logged, stored or put in an error.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from birthright.errors import TrustError
from birthright.seal.envelope import Envelope

_KEM_ID, _KDF_ID, _AEAD_ID = 0x0010, 0x0001, 0x0002
_SUITE_KEM = b"KEM" + _KEM_ID.to_bytes(2, "big")
_SUITE_HPKE = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (_KEM_ID, _KDF_ID, _AEAD_ID))


class KeyAgreement(Protocol):
    """A device key that can run ECDH on chip; returns the x-coordinate of the shared point."""

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes: ...

    def key_agreement_public_key(self) -> ec.EllipticCurvePublicKey: ...


class SealRefused(TrustError):
    code = "seal_refused"


def _extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + suite + label + ikm, hashlib.sha256).digest()


def _expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def open_envelope(envelope: Envelope, device: KeyAgreement, *, serial: str, purpose: str) -> bytes:
    """The plaintext, if ``envelope`` was sealed to this device, ``serial`` and ``purpose``."""
    if envelope.serial != serial or envelope.purpose != purpose:
        raise SealRefused(
            "the envelope is addressed to another serial or purpose", code="seal_misaddressed"
        )
    receiver = device.key_agreement_public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    z = device.ecdh(envelope.ephemeral_key)
    eae_prk = _extract(_SUITE_KEM, b"", b"eae_prk", z)
    shared = _expand(_SUITE_KEM, eae_prk, b"shared_secret", envelope.enc + receiver, 32)
    context = (
        b"\x00"
        + _extract(_SUITE_HPKE, b"", b"psk_id_hash", b"")
        + _extract(_SUITE_HPKE, b"", b"info_hash", envelope.header)
    )
    secret = _extract(_SUITE_HPKE, shared, b"secret", b"")
    key = _expand(_SUITE_HPKE, secret, b"key", context, 32)
    nonce = _expand(_SUITE_HPKE, secret, b"base_nonce", context, 12)
    try:
        return AESGCM(key).decrypt(nonce, envelope.ciphertext, b"")
    except InvalidTag:
        raise SealRefused(
            "the envelope does not open with this device's key (tampered or sealed to another)",
            code="seal_refused",
        ) from None
