"""PEM and base64 helpers for the HTTP edge."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.errors import InputError


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def b64decode(value: str, *, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"{field} is not valid base64", code="bad_encoding") from e


def pem_or_b64(value: str, *, field: str) -> bytes:
    """Accept a PEM block as-is, otherwise base64 of DER."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    return b64decode(value, field=field)
