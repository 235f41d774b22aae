"""OCSP responses (RFC 6960) signed by the issuing CA itself. Pure: request bytes in, DER out.

Every input, however broken, gets an OCSP response: a malformed request a ``malformedRequest``
status, a question about another CA's certificate ``unauthorized``, a status that cannot be
read now ``tryLater``; never an exception.

Answers are pre-produced in the RFC 5019 sense: a signed answer is kept, per certificate and
status, and served again until it is ``refresh`` old (its nextUpdate is ``validity`` after its
thisUpdate). The status is looked up on every request, so a revocation changes the answer at
once; only a request carrying a nonce gets a freshly signed answer of its own. The
BasicOCSPResponse is encoded here (``ca.der``) and signed by ``cryptography``; requests are
parsed by ``cryptography``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from birthright.ca import der
from birthright.ca.crl import REASON_CODES
from birthright.errors import TransientError
from birthright.revocation.model import CertStatus, Reason

#: Longest request body accepted (a single-certificate request is about 100 bytes).
MAX_REQUEST_BYTES = 4096
#: Signed answers (and parsed requests) kept per responder: under 1 KB each with their keys,
#: so at most ~50 MB per process. Past it the cache starts over; an answer costs one signature.
CACHE_SIZE = 50_000

_ID_PKIX_OCSP_BASIC = der.encode_oid("1.3.6.1.5.5.7.48.1.1")
_ID_PKIX_OCSP_NONCE = der.encode_oid("1.3.6.1.5.5.7.48.1.2")
_GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"  # [2] IMPLICIT NULL


@functools.cache
def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """``OCSPResponse { responseStatus }`` without responseBytes (RFC 6960 §4.2.1)."""
    return der.sequence(der.tlv(der.TAG_ENUMERATED, bytes([status.value])))


def _issuer_hashes(
    issuer_cert: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of our issuing CA under the request's hash algorithm."""
    name_hash = hashes.Hash(algorithm)
    name_hash.update(issuer_cert.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(_public_point(issuer_cert))
    return name_hash.finalize(), key_hash.finalize()


def _public_point(issuer_cert: x509.Certificate) -> bytes:
    public = issuer_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise TypeError("the issuing CA key must be EC")
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def request_cert_id(request_der: bytes) -> bytes:
    """The DER of the (single) CertID in an OCSPRequest, echoed as sent (RFC 6960 §4.2.1).

    ``OCSPRequest { tbsRequest { [0] version?, [1] requestorName?, requestList { Request {
    reqCert CertID, ... } } ... } ... }``; the request was already parsed by ``cryptography``.
    """
    outer, _ = der.expect(request_der, 0, der.TAG_SEQUENCE)
    tbs, _ = der.expect(outer, 0, der.TAG_SEQUENCE)
    tag, value, end = der.read_tlv(tbs, 0)
    offset = 0
    while tag in (0xA0, 0xA1):  # version, requestorName
        offset = end
        tag, value, end = der.read_tlv(tbs, offset)
    if tag != der.TAG_SEQUENCE:
        raise der.DerError("OCSP request without a requestList")
    request, _ = der.expect(value, 0, der.TAG_SEQUENCE)
    tag, _, end = der.read_tlv(request, 0)
    if tag != der.TAG_SEQUENCE:
        raise der.DerError("OCSP request without a CertID")
    return request[:end]


def _cert_status(status: CertStatus) -> bytes:
    if status.state == "good":
        return _GOOD
    if status.state == "unknown":
        return _UNKNOWN
    if status.revoked_at is None:
        raise ValueError("a revoked status needs its time")
    info = der.encode_generalized_time(status.revoked_at)
    if status.reason is not None and status.reason is not Reason.unspecified:
        code = der.tlv(der.TAG_ENUMERATED, bytes([REASON_CODES[status.reason.flag]]))
        info += der.explicit(0, code)
    return der.tlv(0xA1, info)  # revoked [1] IMPLICIT RevokedInfo


class OcspResponder:
    """Signs the answers of one issuing CA; keeps signed answers while they are fresh."""

    def __init__(
        self,
        *,
        issuer_cert: x509.Certificate,
        issuer_key: ec.EllipticCurvePrivateKey,
        validity: timedelta = timedelta(hours=1),
        refresh: timedelta = timedelta(minutes=5),
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if not timedelta(0) <= refresh <= validity:
            raise ValueError("answers must be re-signed before they expire")
        self._cert = issuer_cert
        self._key = issuer_key
        self._validity = validity
        self._refresh = refresh
        self._cache_size = cache_size
        self._hashes: dict[str, tuple[bytes, bytes]] = {}
        key_hash = hashlib.sha1(_public_point(issuer_cert)).digest()  # noqa: S324 - RFC 6960 KeyHash
        self._responder_id = der.explicit(2, der.tlv(der.TAG_OCTET_STRING, key_hash))
        #: (CertID DER, status) -> (answer DER, when it was signed)
        self._answers: dict[tuple[bytes, CertStatus], tuple[bytes, datetime]] = {}
        #: request DER (ours, without nonce) -> (serial, CertID DER): parsed once
        self._requests: dict[bytes, tuple[int, bytes]] = {}

    def _ours(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        found = self._hashes.get(algorithm.name)
        if found is None:
            found = self._hashes[algorithm.name] = _issuer_hashes(self._cert, algorithm)
        return found

    def respond(
        self, request_der: bytes, status_of: Callable[[int], CertStatus], now: datetime
    ) -> bytes:
        """A signed answer for the single certificate ``request_der`` asks about."""
        known = self._requests.get(request_der)  # RFC 5019 clients repeat identical requests
        if known is not None:
            serial, cert_id = known
            return self._answer(cert_id, status_of, serial, now)
        if len(request_der) > MAX_REQUEST_BYTES:
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            serial = request.serial_number
            asked = (request.issuer_name_hash, request.issuer_key_hash)
            nonce = _nonce(request)
            cert_id = request_cert_id(request_der)
        except (ValueError, UnsupportedAlgorithm):  # DerError is a ValueError too
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if asked != self._ours(algorithm):
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        if nonce is not None:
            try:
                status = status_of(serial)
            except TransientError:
                return unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
            return self._sign(cert_id, status, now, nonce)
        if len(self._requests) >= self._cache_size:
            self._requests.clear()
        self._requests[request_der] = (serial, cert_id)
        return self._answer(cert_id, status_of, serial, now)

    def _answer(
        self,
        cert_id: bytes,
        status_of: Callable[[int], CertStatus],
        serial: int,
        now: datetime,
    ) -> bytes:
        """The answer to a request without nonce: the kept one while fresh, else signed now."""
        try:
            status = status_of(serial)
        except TransientError:
            return unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
        key = (cert_id, status)
        cached = self._answers.get(key)
        if cached is not None and cached[1] <= now < cached[1] + self._refresh:
            return cached[0]
        answer = self._sign(cert_id, status, now, None)
        if len(self._answers) >= self._cache_size:
            self._answers.clear()  # bounded; the busy answers come back within a request each
        self._answers[key] = (answer, now)
        return answer

    def _sign(
        self, cert_id: bytes, status: CertStatus, now: datetime, nonce: x509.OCSPNonce | None
    ) -> bytes:
        this_update = der.encode_generalized_time(now)
        next_update = der.encode_generalized_time(now + self._validity)
        single = der.sequence(
            cert_id, _cert_status(status), this_update, der.explicit(0, next_update)
        )
        extensions = b""
        if nonce is not None:
            extension = der.sequence(
                _ID_PKIX_OCSP_NONCE, der.tlv(der.TAG_OCTET_STRING, nonce.public_bytes())
            )
            extensions = der.explicit(1, der.sequence(extension))
        tbs = der.sequence(self._responder_id, this_update, der.sequence(single), extensions)
        signature = self._key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        basic = der.sequence(tbs, der.ECDSA_WITH_SHA256, der.encode_bit_string(signature))
        response_bytes = der.sequence(_ID_PKIX_OCSP_BASIC, der.tlv(der.TAG_OCTET_STRING, basic))
        return der.sequence(
            der.tlv(der.TAG_ENUMERATED, b"\x00"),  # successful
            der.explicit(0, response_bytes),
        )


def respond(
    request_der: bytes,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    status_of: Callable[[int], CertStatus],
    now: datetime,
    validity: timedelta = timedelta(hours=1),
) -> bytes:
    """One freshly signed answer (no cache): for tools and tests."""
    responder = OcspResponder(
        issuer_cert=issuer_cert, issuer_key=issuer_key, validity=validity, refresh=timedelta(0)
    )
    return responder.respond(request_der, status_of, now)


def _nonce(request: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None


_RESPONSE_STATUS = {s.value: s.name.lower() for s in ocsp.OCSPResponseStatus}
_CERT_STATUS = {0x80: "good", 0xA1: "revoked", 0x82: "unknown"}


_STATUS_SEEN: dict[bytes, str] = {}
_STATUS_SEEN_SIZE = 4096


def answer_status(response_der: bytes) -> str:
    """What an OCSP answer says, for counting: ``good``, ``revoked``, ``unknown`` (the first
    certificate's status), or the unsuccessful response status (``malformed_request``, ...).
    A few TLV reads, no signature check: for our own answers. The responder hands out the
    same kept answer while it is fresh, so answers read once are remembered (bounded)."""
    seen = _STATUS_SEEN.get(response_der)
    if seen is None:
        if len(_STATUS_SEEN) >= _STATUS_SEEN_SIZE:
            _STATUS_SEEN.clear()
        seen = _STATUS_SEEN[response_der] = _read_answer_status(response_der)
    return seen


def _read_answer_status(response_der: bytes) -> str:
    try:
        body, _ = der.expect(response_der, 0, der.TAG_SEQUENCE)
        status, end = der.expect(body, 0, der.TAG_ENUMERATED)
        if status != b"\x00":
            return _RESPONSE_STATUS.get(status[0] if status else -1, "unsuccessful")
        response_bytes, _ = der.expect(body, end, 0xA0)
        inner, _ = der.expect(response_bytes, 0, der.TAG_SEQUENCE)
        _oid, _oid_value, end = der.read_tlv(inner, 0)
        basic, _ = der.expect(inner, end, der.TAG_OCTET_STRING)
        basic_body, _ = der.expect(basic, 0, der.TAG_SEQUENCE)
        tbs, _ = der.expect(basic_body, 0, der.TAG_SEQUENCE)
        offset = 0
        while True:  # skip version, responderID and producedAt up to the responses
            tag, responses, offset = der.read_tlv(tbs, offset)
            if tag == der.TAG_SEQUENCE:
                break
        single, _ = der.expect(responses, 0, der.TAG_SEQUENCE)
        _cert_id_tag, _cert_id, end = der.read_tlv(single, 0)
        return _CERT_STATUS.get(single[end], "unparsed")
    except (der.DerError, IndexError):
        return "unparsed"
