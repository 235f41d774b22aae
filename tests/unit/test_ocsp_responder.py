"""The OCSP responder: answers read back by ``cryptography``, the signed-answer cache, and
hostile input answered, never raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.ca.ocsp import MAX_REQUEST_BYTES, OcspResponder, request_cert_id
from birthright.errors import TransientError
from birthright.revocation.model import CertStatus, Reason

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuing CA")])
CA = (
    x509.CertificateBuilder()
    .subject_name(NAME)
    .issuer_name(NAME)
    .public_key(KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW - timedelta(days=1))
    .not_valid_after(NOW + timedelta(days=3650))
    .sign(KEY, hashes.SHA256())
)
REVOKED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def device_cert(serial: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"unit {serial}")]))
        .issuer_name(NAME)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )


def request(
    serial: int, *, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes | None = None
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        device_cert(serial),
        CA,
        algorithm or hashes.SHA1(),  # noqa: S303 - the CertID hash RFC 5019 clients use
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


STATUSES = {
    1: CertStatus("good"),
    2: CertStatus("revoked", REVOKED_AT, Reason.keyCompromise),
    3: CertStatus("revoked", REVOKED_AT, Reason.unspecified),
    4: CertStatus("revoked", REVOKED_AT, Reason.certificateHold),
}


class Statuses:
    def __init__(self) -> None:
        self.table = dict(STATUSES)
        self.asked: list[int] = []

    def __call__(self, serial: int) -> CertStatus:
        self.asked.append(serial)
        return self.table.get(serial, CertStatus("unknown"))


def responder(*, refresh: timedelta = timedelta(minutes=5)) -> OcspResponder:
    return OcspResponder(issuer_cert=CA, issuer_key=KEY, refresh=refresh)


def check_signed(der: bytes) -> ocsp.OCSPResponse:
    answer = ocsp.load_der_ocsp_response(der)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    KEY.public_key().verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert answer.signature_hash_algorithm is not None
    assert answer.signature_hash_algorithm.name == "sha256"
    assert (
        answer.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(KEY.public_key()).digest
    )
    assert answer.certificates == []
    return answer


@pytest.mark.parametrize(
    ("serial", "state", "reason"),
    [
        (1, ocsp.OCSPCertStatus.GOOD, None),
        (2, ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise),
        (3, ocsp.OCSPCertStatus.REVOKED, None),
        (4, ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold),
        (5, ocsp.OCSPCertStatus.UNKNOWN, None),
    ],
    ids=["good", "key-compromise", "unspecified-left-out", "hold", "unknown"],
)
@pytest.mark.parametrize(
    "algorithm",
    [hashes.SHA1(), hashes.SHA256(), hashes.SHA384()],  # noqa: S303 - CertID hashes
    ids=["sha1", "sha256", "sha384"],
)
def test_answers_read_back(
    serial: int,
    state: ocsp.OCSPCertStatus,
    reason: x509.ReasonFlags | None,
    algorithm: hashes.HashAlgorithm,
) -> None:
    asked = request(serial, algorithm=algorithm)
    answer = check_signed(responder().respond(asked, Statuses(), NOW))
    parsed_request = ocsp.load_der_ocsp_request(asked)
    assert answer.serial_number == serial
    assert answer.hash_algorithm.name == algorithm.name
    assert answer.issuer_name_hash == parsed_request.issuer_name_hash
    assert answer.issuer_key_hash == parsed_request.issuer_key_hash
    assert answer.certificate_status is state
    assert answer.this_update_utc == NOW.replace(microsecond=0)
    assert answer.produced_at_utc == NOW.replace(microsecond=0)
    assert answer.next_update_utc == NOW.replace(microsecond=0) + timedelta(hours=1)
    if state is ocsp.OCSPCertStatus.REVOKED:
        assert answer.revocation_time_utc == REVOKED_AT
        assert answer.revocation_reason is reason
    assert len(answer.extensions) == 0


def test_a_nonce_is_echoed_in_a_fresh_answer() -> None:
    r = responder()
    first = check_signed(r.respond(request(2, nonce=b"\x01" * 16), Statuses(), NOW))
    second = check_signed(r.respond(request(2, nonce=b"\x02" * 16), Statuses(), NOW))
    assert first.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01" * 16
    assert second.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x02" * 16


def test_answers_without_nonce_are_reused_while_fresh_and_follow_the_status() -> None:
    r = responder(refresh=timedelta(minutes=5))
    statuses = Statuses()
    first = r.respond(request(1), statuses, NOW)
    assert r.respond(request(1), statuses, NOW + timedelta(minutes=4)) == first
    assert statuses.asked == [1, 1], "the status is read on every request"
    # revoked meanwhile: the next answer says so at once
    statuses.table[1] = CertStatus("revoked", NOW, Reason.keyCompromise)
    revoked = check_signed(r.respond(request(1), statuses, NOW + timedelta(minutes=4)))
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    # released again: the cached good answer is still fresh, and right
    statuses.table[1] = CertStatus("good")
    assert r.respond(request(1), statuses, NOW + timedelta(minutes=4)) == first
    # too old: signed again
    later = NOW + timedelta(minutes=5)
    renewed = check_signed(r.respond(request(1), statuses, later))
    assert renewed.this_update_utc == later


def test_the_cache_is_bounded() -> None:
    r = OcspResponder(issuer_cert=CA, issuer_key=KEY, cache_size=3)
    for serial in range(10, 20):
        r.respond(request(serial), Statuses(), NOW)
    assert len(r._answers) <= 3  # the bound is the point


def test_a_status_that_cannot_be_read_is_try_later() -> None:
    def down(_serial: int) -> CertStatus:
        raise TransientError("database down")

    answer = ocsp.load_der_ocsp_response(responder().respond(request(1), down, NOW))
    assert answer.response_status is ocsp.OCSPResponseStatus.TRY_LATER


def test_another_issuer_is_unauthorized() -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(other_key.public_key())
        .serial_number(9)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(other_key, hashes.SHA256())
    )
    asked = ocsp.OCSPRequestBuilder().add_certificate(other, other, hashes.SHA256()).build()
    answer = responder().respond(asked.public_bytes(Encoding.DER), Statuses(), NOW)
    assert ocsp.load_der_ocsp_response(answer).response_status is (
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    )


def test_the_cert_id_is_echoed_as_sent() -> None:
    asked = request(2, nonce=b"\x05" * 8)
    cert_id = request_cert_id(asked)
    assert cert_id[0] == 0x30
    assert cert_id in responder().respond(asked, Statuses(), NOW)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x30\x03\x02\x01\x00", b"not der at all", b"\x30" * MAX_REQUEST_BYTES + b"\x00"],
    ids=["empty", "integer", "text", "too-long"],
)
def test_malformed_requests_get_malformed_request(body: bytes) -> None:
    answer = ocsp.load_der_ocsp_response(responder().respond(body, Statuses(), NOW))
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


GOOD_REQUEST = request(1)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda i, b: GOOD_REQUEST[:i] + b + GOOD_REQUEST[i + len(b) :],
            st.integers(min_value=0, max_value=len(GOOD_REQUEST)),
            st.binary(min_size=1, max_size=4),
        ),
    )
)
def test_any_bytes_get_an_ocsp_response(body: bytes) -> None:
    answer = ocsp.load_der_ocsp_response(responder().respond(body, Statuses(), NOW))
    if answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
        check_signed(answer.public_bytes(Encoding.DER))
