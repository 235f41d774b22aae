"""Device-agent side of operational certificates: ask with a fresh proof, renew when due."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from birthright.device.sealing import device_serial
from birthright.station.client import _json_or_raise

#: Renew when less than this is left (a third of the default seven days, rounded up).
RENEW_MARGIN = timedelta(days=3)


class IdentityDevice(Protocol):
    def read_chain(self) -> Sequence[x509.Certificate]: ...

    def identity_signer(self) -> ec.EllipticCurvePrivateKey: ...


def request_operational_cert(
    se: IdentityDevice, backend_url: str, *, verify: ssl.SSLContext | bool = True
) -> x509.Certificate:
    """Fetch a nonce, sign a CSR with it on chip, and trade it for an operational cert."""
    serial = device_serial(se)
    with httpx.Client(base_url=backend_url, timeout=10.0, verify=verify) as http:
        nonce = _json_or_raise(http.post("/v1/attestations/challenges", json={"serial": serial}))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
            .add_attribute(AttributeOID.CHALLENGE_PASSWORD, str(nonce["nonce"]).encode())
            .sign(se.identity_signer(), hashes.SHA256())
        )
        body = {"csr": csr.public_bytes(Encoding.PEM).decode()}
        answer = _json_or_raise(http.post("/v1/operational-certificates", json=body))
    return x509.load_pem_x509_certificate(str(answer["certificate"]).encode())


def renew_if_due(
    se: IdentityDevice,
    current: x509.Certificate | None,
    backend_url: str,
    *,
    now: datetime,
    margin: timedelta = RENEW_MARGIN,
    verify: ssl.SSLContext | bool = True,
) -> x509.Certificate:
    """``current`` while it has more than ``margin`` left, else a fresh one."""
    if current is not None and current.not_valid_after_utc - now > margin:
        return current
    return request_operational_cert(se, backend_url, verify=verify)
