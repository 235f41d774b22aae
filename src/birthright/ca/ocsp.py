"""OCSP responses (RFC 6960) signed by the issuing CA itself. Pure: request bytes in, DER out.

Every input, however broken, gets an OCSP response: a malformed request a ``malformedRequest``
status, a question about another CA's certificate ``unauthorized``, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from birthright.revocation.model import CertStatus

#: Longest request body accepted (a single-certificate request is about 100 bytes).
MAX_REQUEST_BYTES = 4096

_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def _issuer_hashes(
    issuer_cert: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of our issuing CA under the request's hash algorithm."""
    public = issuer_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise TypeError("the issuing CA key must be EC")
    name_hash = hashes.Hash(algorithm)
    name_hash.update(issuer_cert.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    return name_hash.finalize(), key_hash.finalize()


def respond(
    request_der: bytes,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    status_of: Callable[[int], CertStatus],
    now: datetime,
    validity: timedelta = timedelta(hours=1),
) -> bytes:
    """A signed answer for the single certificate ``request_der`` asks about."""
    if len(request_der) > MAX_REQUEST_BYTES:
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        serial = request.serial_number
        asked = (request.issuer_name_hash, request.issuer_key_hash)
        nonce = _nonce(request)
    except (ValueError, UnsupportedAlgorithm):
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if asked != _issuer_hashes(issuer_cert, algorithm):
        return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    status = status_of(serial)
    this_update = now.replace(microsecond=0)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=asked[0],
        issuer_key_hash=asked[1],
        serial_number=serial,
        algorithm=algorithm,
        cert_status=_STATUS[status.state],
        this_update=this_update,
        next_update=this_update + validity,
        revocation_time=status.revoked_at.replace(microsecond=0) if status.revoked_at else None,
        revocation_reason=status.reason.flag if status.reason else None,
    )
    if nonce is not None:
        builder = builder.add_extension(nonce, critical=False)
    response = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer_cert).sign(
        issuer_key, hashes.SHA256()
    )
    return response.public_bytes(Encoding.DER)


def _nonce(request: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None
