"""Full CRLs (RFC 5280 §5) signed by the issuing CA. Pure: entries and a key in, DER out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.ca.profile import authority_key_identifier


@dataclass(frozen=True)
class CrlEntry:
    serial_number: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    entries: Iterable[CrlEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A full CRL (DER): CRL number, AKI, one entry per certificate with its reason code.

    ``unspecified`` is left out of the entry, as RFC 5280 §5.3.1 recommends.
    """
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise ValueError("CRL times must be timezone-aware")
    if number < 1:
        raise ValueError("CRL numbers start at 1")
    revoked = [_revoked(entry) for entry in entries]
    # One builder with the whole list: adding entries one by one copies the list each time
    # (quadratic: 36 s for 100,000 entries instead of about 1 s).
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(issuer_cert), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(Encoding.DER)


def _revoked(entry: CrlEntry) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial_number)
        .revocation_date(entry.revoked_at.replace(microsecond=0))
    )
    if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(entry.reason), critical=False)
    return builder.build()
