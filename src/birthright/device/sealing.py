"""Device-agent side of sealing: vouch for the key-agreement key, open a sealed payload.

The ECDH runs inside the secure element; this module only frames the bytes (ADR 0010).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Sequence
from typing import Protocol

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID

from birthright.errors import DeviceError
from birthright.seal.envelope import parse
from birthright.seal.opener import KeyAgreement, open_envelope
from birthright.seal.service import ka_statement
from birthright.station.client import _json_or_raise


class HasChain(Protocol):
    def read_chain(self) -> Sequence[x509.Certificate]: ...


class SealingDevice(KeyAgreement, HasChain, Protocol):
    def sign(self, data: bytes) -> bytes: ...


def device_serial(se: HasChain) -> str:
    chain = se.read_chain()
    names = chain[0].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) if chain else []
    if not names:
        raise DeviceError("this device holds no identity certificate yet", code="not_provisioned")
    return str(names[0].value)


def register_key_agreement_key(
    se: SealingDevice, backend_url: str, *, verify: ssl.SSLContext | bool = True
) -> None:
    """Send the device's key-agreement key, signed by its identity key, to the backend."""
    serial = device_serial(se)
    key = se.key_agreement_public_key()
    statement = ka_statement(serial, key)
    spki = statement.split(b"\x00", 2)[2]
    body = {
        "public_key": base64.b64encode(spki).decode(),
        "signature": base64.b64encode(se.sign(statement)).decode(),
    }
    with httpx.Client(base_url=backend_url, timeout=10.0, verify=verify) as http:
        response = http.put(f"/v1/devices/{serial}/key-agreement-key", json=body)
    if response.status_code != 204:
        _json_or_raise(response)


def seal_for(
    backend_url: str,
    serial: str,
    purpose: str,
    payload: bytes,
    *,
    verify: ssl.SSLContext | bool = True,
    token: str | None = None,
) -> bytes:
    """Ask the backend to seal ``payload`` to ``serial``; the envelope's bytes. Sealing is an
    operator action: ``token`` is an operator API token (``birthright operator token``)."""
    body = {"purpose": purpose, "payload": base64.b64encode(payload).decode()}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=backend_url, timeout=10.0, verify=verify, headers=headers) as http:
        answer = _json_or_raise(http.post(f"/v1/devices/{serial}/sealed", json=body))
    return base64.b64decode(answer["envelope"])


def open_sealed(se: SealingDevice, envelope: bytes, *, purpose: str) -> bytes:
    """Open an envelope addressed to this device and ``purpose``, the ECDH on chip."""
    return open_envelope(parse(envelope), se, serial=device_serial(se), purpose=purpose)
