"""Microchip Trust Platform manifests: the chips a vendor delivered, signed entry by entry.

A manifest is a JSON array of *SignedSecureElement* objects. Each is a JWS in the JSON
serialization (RFC 7515 §7.2): flattened (``protected``, ``header``, ``payload``,
``signature``) as the vendor ships it, or general (``payload`` + one ``signatures`` element).
The protected header names the vendor's manifest signing certificate (``x5t#S256``: SHA-256 of
its DER; ``kid``: its subject key identifier, both base64url) and ``alg`` ES256; the payload is
the secure element: ``uniqueId`` (the chip serial number, hex) and ``publicKeySet`` (JWKs of
the keys the chip generated). The unprotected header repeats ``uniqueId`` unsigned, for
search only: we trust the payload's. Chip ids are kept as uppercase hex (the form stations
report and the vendor's tools print).

Pure: bytes and the signer certificate in, ``ChipDelivery`` records and per-entry errors
(entry number, line where the entry starts, stable code) out. Nothing unsigned becomes a record.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from birthright.errors import InputError
from birthright.reconcile.manifests import (
    DEFAULT_MAX_BYTES,
    ChipDelivery,
    ManifestError,
    ManifestTooLarge,
    Parsed,
    RowError,
)

VENDOR = "Microchip"
B64URL = re.compile(r"[A-Za-z0-9_-]*")
UNIQUE_ID = re.compile(r"^[0-9a-fA-F]{2,64}$")
MAX_KEYS = 16


class SignerInvalid(InputError):
    code = "signer_invalid"


class EntryInvalid(ValueError):
    """One entry is refused; ``code`` is stable (``entry.signature_invalid`` …)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not B64URL.fullmatch(value):
        raise EntryInvalid("entry.malformed", f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as e:
        raise EntryInvalid("entry.malformed", f"{what} is not base64url") from e


@dataclass(frozen=True)
class ManifestSigner:
    """The vendor's manifest signing certificate, as the verifier was given it."""

    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    x5t_s256: str
    kid: str | None

    @classmethod
    def from_pem(cls, pem: bytes) -> ManifestSigner:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as e:
            raise SignerInvalid("the signer file is not a PEM certificate") from e
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise SignerInvalid("the manifest signer's key must be EC P-256 (ES256)")
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            kid: str | None = b64url(ski.value.digest)
        except x509.ExtensionNotFound:
            kid = None
        return cls(cert, key, b64url(cert.fingerprint(hashes.SHA256())), kid)


@dataclass(frozen=True)
class SecureElement:
    unique_id: str  # uppercase hex, as chip ids are written elsewhere in the project
    public_keys: tuple[ec.EllipticCurvePublicKey, ...]


def _entries(data: bytes) -> Iterator[tuple[int, int, object]]:
    """(entry number, line where it starts, value) for each element of the top-level array."""
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError("the manifest is not UTF-8", code="encoding") from e
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    pos = ws.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        raise ManifestError(
            f"line {text.count(chr(10), 0, pos) + 1}: expected a JSON array of signed entries",
            code="manifest_json",
        )
    pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
    number, line, counted = 0, 1, 0
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            line += text.count("\n", counted, pos)
            counted = pos
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                raise _json_error(e) from e
            except RecursionError as e:
                raise ManifestError(f"line {line}: nested too deeply", code="manifest_json") from e
            number += 1
            yield number, line, value
            pos = ws.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
                continue
            if text.startswith("]", pos):
                pos += 1
                break
            raise _json_error(json.JSONDecodeError("expected ',' or ']'", text, pos))
    pos = ws.match(text, pos).end()  # type: ignore[union-attr]
    if pos < len(text):
        raise _json_error(json.JSONDecodeError("extra data after the array", text, pos))


def _json_error(e: json.JSONDecodeError) -> ManifestError:
    return ManifestError(
        f"line {e.lineno}, column {e.colno}: malformed JSON ({e.msg})",
        code="manifest_json",
        line=e.lineno,
        column=e.colno,
    )


def _jws_parts(entry: object) -> tuple[str, Mapping[str, Any], str, str]:
    """(protected b64, unprotected header, payload b64, signature b64) of one entry."""
    if not isinstance(entry, dict):
        raise EntryInvalid("entry.malformed", "not a JSON object")
    if "signatures" in entry:  # general serialization: exactly one signature
        sigs = entry["signatures"]
        if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
            raise EntryInvalid("entry.malformed", "expected exactly one signature")
        signed: Mapping[str, Any] = sigs[0]
    else:
        signed = entry
    protected, payload, signature = (
        signed.get("protected"),
        entry.get("payload"),
        signed.get("signature"),
    )
    header = signed.get("header", {})
    if not all(isinstance(v, str) for v in (protected, payload, signature)):
        raise EntryInvalid("entry.malformed", "protected, payload and signature are required")
    for name, value in (("protected", protected), ("payload", payload), ("signature", signature)):
        if not B64URL.fullmatch(value):  # type: ignore[arg-type]
            raise EntryInvalid("entry.malformed", f"{name} is not base64url")
    if not isinstance(header, dict):
        raise EntryInvalid("entry.malformed", "the unprotected header is not an object")
    return protected, header, payload, signature  # type: ignore[return-value]


def _check_header(protected_b64: str, signer: ManifestSigner) -> None:
    try:
        header = json.loads(_unb64url(protected_b64, "protected header"))
    except ValueError as e:
        if isinstance(e, EntryInvalid):
            raise
        raise EntryInvalid("entry.malformed", "the protected header is not JSON") from e
    if not isinstance(header, dict):
        raise EntryInvalid("entry.malformed", "the protected header is not an object")
    if header.get("alg") != "ES256":
        raise EntryInvalid("entry.algorithm", f"alg {header.get('alg')!r} is not ES256")
    if "crit" in header:
        raise EntryInvalid("entry.malformed", "critical header parameters are not supported")
    thumb, kid = header.get("x5t#S256"), header.get("kid")
    if thumb is None and kid is None:
        raise EntryInvalid("entry.signer_unknown", "the header names no signer (x5t#S256, kid)")
    if thumb is not None and thumb != signer.x5t_s256:
        raise EntryInvalid("entry.wrong_signer", "x5t#S256 names another certificate")
    if kid is not None and signer.kid is not None and kid != signer.kid:
        raise EntryInvalid("entry.wrong_signer", "kid names another key")


def _verify(protected: str, payload: str, signature: str, signer: ManifestSigner) -> None:
    raw = _unb64url(signature, "signature")
    if len(raw) != 64:
        raise EntryInvalid("entry.signature_invalid", "an ES256 signature is 64 bytes (r||s)")
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    try:
        signer.public_key.verify(
            der, f"{protected}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature as e:
        raise EntryInvalid(
            "entry.signature_invalid", "the signature does not match: changed after signing"
        ) from e


def _jwk(value: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(value, dict) or value.get("kty") != "EC" or value.get("crv") != "P-256":
        raise EntryInvalid("entry.public_key_invalid", "a key is not an EC P-256 JWK")
    x, y = _unb64url(value.get("x"), "x"), _unb64url(value.get("y"), "y")
    if len(x) != 32 or len(y) != 32:
        raise EntryInvalid("entry.public_key_invalid", "a key's x or y is not 32 bytes")
    try:
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x), int.from_bytes(y), ec.SECP256R1()
        ).public_key()
    except ValueError as e:
        raise EntryInvalid("entry.public_key_invalid", "a key is not on the P-256 curve") from e


def _secure_element(payload_b64: str, header: Mapping[str, Any]) -> SecureElement:
    try:
        body = json.loads(_unb64url(payload_b64, "payload"))
    except ValueError as e:
        if isinstance(e, EntryInvalid):
            raise
        raise EntryInvalid("entry.malformed", "the payload is not JSON") from e
    if not isinstance(body, dict):
        raise EntryInvalid("entry.malformed", "the payload is not an object")
    unique_id = body.get("uniqueId")
    if not isinstance(unique_id, str) or not UNIQUE_ID.match(unique_id):
        raise EntryInvalid("entry.unique_id_invalid", "uniqueId is missing or not hex")
    claimed = header.get("uniqueId")
    if claimed is not None and str(claimed).lower() != unique_id.lower():
        raise EntryInvalid(
            "entry.unique_id_mismatch", "the header's uniqueId differs from the signed one"
        )
    key_set = body.get("publicKeySet")
    keys = key_set.get("keys") if isinstance(key_set, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise EntryInvalid("entry.public_key_invalid", "publicKeySet.keys is missing or empty")
    return SecureElement(unique_id.upper(), tuple(_jwk(k) for k in keys))


def verify_entry(entry: object, signer: ManifestSigner) -> SecureElement:
    """One SignedSecureElement, verified; raises ``EntryInvalid`` with a stable code."""
    protected, header, payload, signature = _jws_parts(entry)
    _check_header(protected, signer)
    _verify(protected, payload, signature, signer)
    return _secure_element(payload, header)


def parse_microchip_manifest(
    stream: IO[bytes],
    signer: ManifestSigner,
    *,
    delivered_at: datetime,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Parsed[ChipDelivery]:
    """Every verified chip, and every refused entry with its number, line and code."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ManifestTooLarge(f"the file is larger than the {max_bytes}-byte limit")
    records: list[ChipDelivery] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for number, line, entry in _entries(data):
        try:
            element = verify_entry(entry, signer)
        except EntryInvalid as e:
            errors.append(RowError(line, f"entry {number}: {e}", code=e.code, entry=number))
            continue
        if element.unique_id in seen:
            errors.append(
                RowError(
                    line,
                    f"entry {number}: uniqueId repeats entry {seen[element.unique_id]}",
                    code="entry.duplicate",
                    entry=number,
                )
            )
            continue
        seen[element.unique_id] = number
        records.append(ChipDelivery(VENDOR, element.unique_id, delivered_at, line))
    return Parsed(tuple(records), tuple(errors))
