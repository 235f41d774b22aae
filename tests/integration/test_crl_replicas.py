"""Two replicas over one database: the CRL one signs is the CRL the other serves, and a newer
one replaces it at once (each process keeps the last CRL it read, keyed by its number)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.revocation import SqlRevocationStore
from birthright.revocation.model import Reason
from birthright.revocation.publish import IssuingCaSigner
from birthright.revocation.service import RevocationService
from tests.integration.test_status_reader import seed

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def replica(url: str, clock: Clock, key: ec.EllipticCurvePrivateKey) -> RevocationService:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuing CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return RevocationService(
        store=SqlRevocationStore(make_sessionmaker(make_engine(url))),
        signer=IssuingCaSigner(issuer_cert=cert, issuer_key=key),
        clock=clock,
    )


def test_replicas_serve_the_latest_crl(database_url: str) -> None:
    seed(database_url)
    clock = Clock()
    key = ec.generate_private_key(ec.SECP256R1())
    a, b = replica(database_url, clock, key), replica(database_url, clock, key)

    first = a.crl()
    assert b.crl().der == first.der
    assert b.crl().number == first.number
    assert len(x509.load_der_x509_crl(first.der)) == 2  # b2, and d4 on hold

    a.revoke("BR0", Reason.keyCompromise)
    second = b.crl()  # dirty: b signs the next one
    assert second.number == first.number + 1
    assert len(x509.load_der_x509_crl(second.der)) == 3
    assert a.crl().der == second.der  # a reads b's CRL, not its own old one
    assert second.digest != first.digest
