"""The sealed-payload envelope, version 1 (ADR 0010).

Layout (all lengths in bytes)::

    magic   "BRS1"                      4
    slen    length of the serial        1   (1..64)
    serial  UTF-8                       slen
    plen    length of the purpose       1   (1..64)
    purpose ASCII [a-z0-9._-]           plen
    enc     HPKE encapsulated key       65  (uncompressed P-256 point, the ephemeral key)
    ct      HPKE ciphertext + GCM tag   >= 16

The payload is RFC 9180 HPKE, base mode, DHKEM(P-256, HKDF-SHA256) + HKDF-SHA256 +
AES-256-GCM. The header (magic .. purpose) is the HPKE ``info``, so a ciphertext moved to
another serial or purpose, or a header edited in flight, does not open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import InputError

MAGIC = b"BRS1"
ENC_LEN = 65
TAG_LEN = 16
MAX_FIELD = 64
MAX_PLAINTEXT = 64 * 1024
_PURPOSE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


class EnvelopeError(InputError):
    code = "bad_envelope"


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: every field checked, the ciphertext not yet opened."""

    serial: str
    purpose: str
    enc: bytes
    ciphertext: bytes

    @property
    def header(self) -> bytes:
        return header(self.serial, self.purpose)

    def to_bytes(self) -> bytes:
        return self.header + self.enc + self.ciphertext

    @property
    def ephemeral_key(self) -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.enc)


def check_purpose(purpose: str) -> str:
    if not _PURPOSE.fullmatch(purpose):
        raise InputError("a purpose is 1-64 characters of a-z 0-9 . _ -", code="bad_seal_purpose")
    return purpose


def header(serial: str, purpose: str) -> bytes:
    raw_serial = serial.encode()
    if not 1 <= len(raw_serial) <= MAX_FIELD:
        raise InputError("a serial is 1-64 bytes", code="bad_serial")
    raw_purpose = check_purpose(purpose).encode()
    return MAGIC + bytes([len(raw_serial)]) + raw_serial + bytes([len(raw_purpose)]) + raw_purpose


def seal(
    public_key: ec.EllipticCurvePublicKey, plaintext: bytes, *, serial: str, purpose: str
) -> Envelope:
    """Seal ``plaintext`` to the device key ``public_key`` for ``serial`` and ``purpose``."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise InputError("a device key must be on P-256", code="wrong_curve")
    if len(plaintext) > MAX_PLAINTEXT:
        raise InputError("a sealed payload is at most 64 KiB", code="payload_too_large")
    info = header(serial, purpose)
    sealed = SUITE.encrypt(plaintext, public_key, info=info)
    return Envelope(serial, purpose, sealed[:ENC_LEN], sealed[ENC_LEN:])


def parse(data: bytes) -> Envelope:
    """Parse untrusted bytes into an ``Envelope`` or raise ``EnvelopeError``."""
    if data[:4] != MAGIC:
        raise EnvelopeError("not a version-1 sealed envelope", code="bad_envelope")
    pos = 4
    fields: list[str] = []
    for name in ("serial", "purpose"):
        if pos >= len(data):
            raise EnvelopeError(f"envelope truncated before the {name}")
        size = data[pos]
        if not 1 <= size <= MAX_FIELD or pos + 1 + size > len(data):
            raise EnvelopeError(f"envelope {name} length out of range")
        try:
            fields.append(data[pos + 1 : pos + 1 + size].decode())
        except UnicodeDecodeError as e:
            raise EnvelopeError(f"envelope {name} is not UTF-8") from e
        pos += 1 + size
    if not _PURPOSE.fullmatch(fields[1]):
        raise EnvelopeError("envelope purpose is not a valid purpose")
    enc, ciphertext = data[pos : pos + ENC_LEN], data[pos + ENC_LEN :]
    if len(enc) != ENC_LEN or enc[0] != 4 or len(ciphertext) < TAG_LEN:
        raise EnvelopeError("envelope truncated: no ephemeral key or ciphertext")
    if len(ciphertext) > MAX_PLAINTEXT + TAG_LEN:
        raise EnvelopeError("envelope ciphertext too long")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc)
    except ValueError as e:
        raise EnvelopeError("envelope ephemeral key is not a P-256 point") from e
    return Envelope(fields[0], fields[1], enc, ciphertext)
