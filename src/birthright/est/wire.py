"""EST's wire formats, pure: base64 bodies, certs-only PKCS#7, and what a CSR names.

- ``simpleenroll`` / ``simplereenroll`` bodies are a base64 DER PKCS#10 (``application/pkcs10``,
  RFC 7030 §4.2.1); whitespace and line breaks are tolerated, nothing else.
- Answers (``cacerts``, issued certificates) are a base64 DER "certs-only" CMS SignedData
  (``application/pkcs7-mime``, RFC 7030 §4.1.3 and §4.2.3), in 64-column lines.
- The unit's identity travels in the CSR subject: ``CN`` is the chip id and, optionally,
  ``serialNumber`` (2.5.4.5) is the product serial the station expects.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID

from birthright.ca.csr import DEFAULT_MAX_CSR_BYTES, CsrError, ParsedCsr
from birthright.types import ChipId, ProductSerial

PKCS7_MIME = "application/pkcs7-mime; smime-type=certs-only"
PKCS10 = "application/pkcs10"
CHIP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LABEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BASE64_BODY = re.compile(rb"^[A-Za-z0-9+/=\s]*$")


@dataclass(frozen=True)
class CsrIdentity:
    chip_id: ChipId
    serial: ProductSerial | None


def certs_only(certs: Sequence[x509.Certificate]) -> bytes:
    """Base64 (64-column lines) of a DER certs-only PKCS#7 holding ``certs``."""
    der = pkcs7.serialize_certificates(list(certs), Encoding.DER)
    text = base64.b64encode(der)
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\n"


def decode_csr_body(body: bytes) -> bytes:
    """DER of a base64 PKCS#10 body; ``CsrError`` if it is not base64."""
    limit = DEFAULT_MAX_CSR_BYTES * 4 // 3 + 1024
    if len(body) > limit:
        raise CsrError(f"the request body is over {limit} bytes", code="csr_too_large")
    if not _BASE64_BODY.match(body):
        raise CsrError("an EST request body is a base64 DER PKCS#10 request")
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise CsrError("the request body is not valid base64") from e
    if not der:
        raise CsrError("the request body is empty")
    return der


def csr_identity(csr: ParsedCsr) -> CsrIdentity:
    """The chip id (subject CN) and, if given, the product serial (subject serialNumber)."""
    subject = csr.csr.subject
    chips = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    serials = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(chips) != 1 or not isinstance(chips[0].value, str):
        raise CsrError(
            "an EST request names its unit's chip id as the subject's one CN",
            code="est_chip_id_missing",
        )
    chip = chips[0].value
    if not CHIP_ID.match(chip):
        raise CsrError(f"not a chip id: {chip[:64]!r}", code="est_chip_id_missing")
    serial: str | None = None
    if serials:
        value = serials[0].value
        if len(serials) != 1 or not isinstance(value, str) or not SERIAL.match(value):
            raise CsrError("the subject's serialNumber is not one product serial")
        serial = value
    return CsrIdentity(ChipId(chip), ProductSerial(serial) if serial else None)


def csr_serial(csr: ParsedCsr) -> ProductSerial | None:
    """The subject's serialNumber alone (re-enrollment needs no chip id)."""
    values = csr.csr.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None
    value = values[0].value
    return ProductSerial(value) if SERIAL.match(value) else None
