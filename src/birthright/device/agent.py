"""What a device does to prove itself: fetch a nonce, sign evidence on chip, present it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.attest.evidence import build_evidence
from birthright.errors import DeviceError
from birthright.se.base import SecureElement
from birthright.station.client import BackendClient


def device_serial(se: SecureElement) -> str:
    chain = se.read_chain()
    if not chain:
        raise DeviceError("this device holds no identity certificate yet", code="not_provisioned")
    attrs = chain[0].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not attrs:
        raise DeviceError("the identity certificate names no serial", code="not_provisioned")
    return str(attrs[0].value)


def attest(se: SecureElement, backend: BackendClient, *, now: datetime) -> dict[str, Any]:
    """Run one attestation round; returns the backend's verdict with its checks."""
    serial = device_serial(se)
    nonce = backend.challenge(serial)
    evidence = build_evidence(nonce=nonce, serial=serial, now=now)
    chain = [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]
    return backend.attest(evidence=evidence, signature=se.sign(evidence), chain_pem=chain)
