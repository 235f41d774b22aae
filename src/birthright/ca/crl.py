"""Full CRLs (RFC 5280 §5) signed by the issuing CA. Pure: entries and a key in, DER out.

The TBSCertList is encoded here, directly: a CRL of a fleet is a long list of tiny entries
(``SEQUENCE { serial, revocationDate, reason }``, about 50 bytes each) and ``cryptography``'s
builder makes several Python objects per entry (about 30 s for 1,000,000). The header and the
CRL extensions still come from ``cryptography`` (names and extensions as it encodes them), and
the signature is ``cryptography``'s over our TBS bytes, so a token key signs as it does
everywhere else. Tests pin the output byte for byte against ``cryptography``'s builder.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.ca import der
from birthright.ca.profile import authority_key_identifier
from birthright.revocation.model import Reason, RevokedEntry

_OID_CRL_NUMBER = der.encode_oid("2.5.29.20")
_OID_AKI = der.encode_oid("2.5.29.35")
_OID_CRL_REASON = der.encode_oid("2.5.29.21")
#: RFC 5280 §5.3.1 CRLReason codes (7 is not used).
REASON_CODES = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
MAX_SERIAL_OCTETS = 20  # RFC 5280 §4.1.2.2


def _extension(oid: bytes, value: bytes) -> bytes:
    return der.sequence(oid, der.tlv(der.TAG_OCTET_STRING, value))


def _reason_extensions(reason: Reason) -> bytes:
    """crlEntryExtensions with the reasonCode; nothing for ``unspecified`` (RFC 5280 §5.3.1)."""
    if reason is Reason.unspecified:
        return b""
    code = der.tlv(der.TAG_ENUMERATED, bytes([REASON_CODES[reason.flag]]))
    return der.sequence(_extension(_OID_CRL_REASON, code))


def serial_octets(cert_serial: str) -> bytes:
    """Content octets of the INTEGER a lowercase-hex certificate serial stands for."""
    digits = cert_serial.lstrip("0") or "0"
    try:
        if not cert_serial:
            raise ValueError("empty")
        octets = bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    except ValueError as e:
        raise ValueError(f"not a hex certificate serial: {cert_serial!r}") from e
    if octets[0] & 0x80:
        octets = b"\x00" + octets
    if len(octets) > MAX_SERIAL_OCTETS:
        raise ValueError("certificate serials have at most 20 octets (159 bits)")
    return octets


def _revoked_certificates(entries: Iterable[RevokedEntry]) -> bytes:
    """The content of ``revokedCertificates``: one small SEQUENCE per entry, in one loop.

    The hot loop of a fleet's CRL: the few distinct reasons and times are encoded once.
    """
    reasons = {r: _reason_extensions(r) for r in Reason}
    times: dict[datetime, bytes] = {}
    out: list[bytes] = []
    append = out.append
    for cert_serial, revoked_at, reason in entries:
        if not cert_serial or cert_serial[0] == "0":  # not as stored: normalise or refuse
            octets = serial_octets(cert_serial)
        else:
            try:
                octets = bytes.fromhex("0" + cert_serial if len(cert_serial) & 1 else cert_serial)
            except ValueError:
                octets = serial_octets(cert_serial)  # raises, naming the serial
            if octets[0] & 0x80:
                octets = b"\x00" + octets
            if len(octets) > MAX_SERIAL_OCTETS:
                raise ValueError("certificate serials have at most 20 octets (159 bits)")
        time = times.get(revoked_at)
        if time is None:
            if len(times) > 4096:  # bounded: a CRL of single revocations has many times
                times.clear()
            time = times[revoked_at] = der.encode_time(revoked_at)
        body = b"\x02" + bytes((len(octets),)) + octets + time + reasons[reason]
        append(b"\x30" + bytes((len(body),)) + body)  # at most 2 + 20 + 17 + 15 bytes
    return b"".join(out)


def tbs_cert_list(
    *,
    issuer: x509.Name,
    aki: x509.AuthorityKeyIdentifier,
    entries: Iterable[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """The DER TBSCertList (RFC 5280 §5.1.2): v2, ecdsa-with-SHA256, CRL number and AKI."""
    revoked = _revoked_certificates(entries)
    extensions = der.explicit(
        0,
        der.sequence(
            _extension(_OID_CRL_NUMBER, x509.CRLNumber(number).public_bytes()),
            _extension(_OID_AKI, aki.public_bytes()),
        ),
    )
    return der.sequence(
        der.encode_integer(1),  # v2
        der.ECDSA_WITH_SHA256,
        issuer.public_bytes(),
        der.encode_time(this_update),
        der.encode_time(next_update),
        der.tlv(der.TAG_SEQUENCE, revoked) if revoked else b"",  # absent when empty (§5.1.2.6)
        extensions,
    )


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    entries: Iterable[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A full CRL (DER): CRL number, AKI, one entry per certificate with its reason code.

    ``unspecified`` is left out of the entry, as RFC 5280 §5.3.1 recommends. Times are
    whole seconds; entries keep the order given.
    """
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise ValueError("CRL times must be timezone-aware")
    if number < 1:
        raise ValueError("CRL numbers start at 1")
    tbs = tbs_cert_list(
        issuer=issuer_cert.subject,
        aki=authority_key_identifier(issuer_cert),
        entries=entries,
        number=number,
        this_update=this_update,
        next_update=next_update,
    )
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return der.sequence(tbs, der.ECDSA_WITH_SHA256, der.encode_bit_string(signature))
