"""PKCS#10 parsing: parse once, then trust; anything else is refused with a stable code."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.ca.csr import CsrError, ParsedCsr, key_fingerprint, parse_csr
from birthright.errors import InputError

SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aaaaaaaa")])
P256_KEY = ec.generate_private_key(ec.SECP256R1())


def make_csr(key: object, algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(SUBJECT)
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(Encoding.DER)


VALID_DER = make_csr(P256_KEY, hashes.SHA256())


def test_valid_der_csr_is_parsed_into_a_trusted_object() -> None:
    parsed = parse_csr(VALID_DER)

    assert isinstance(parsed, ParsedCsr)
    spki = P256_KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert parsed.public_key_der == spki
    assert parsed.key_fingerprint == hashlib.sha256(spki).hexdigest()
    assert parsed.key_fingerprint == key_fingerprint(P256_KEY.public_key())
    assert parsed.der == VALID_DER
    assert parsed.public_key.public_numbers() == P256_KEY.public_key().public_numbers()


def test_pem_is_accepted_for_convenience() -> None:
    pem = x509.load_der_x509_csr(VALID_DER).public_bytes(Encoding.PEM)

    parsed = parse_csr(pem)

    assert parsed.der == VALID_DER


def test_parsed_csr_is_frozen() -> None:
    parsed = parse_csr(VALID_DER)
    with pytest.raises(AttributeError):
        parsed.der = b""  # type: ignore[misc]


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(CsrError) as e:
        parse_csr(VALID_DER, max_bytes=len(VALID_DER) - 1)
    assert e.value.code == "csr_too_large"
    assert parse_csr(VALID_DER, max_bytes=len(VALID_DER)).der == VALID_DER


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x00", id="empty-sequence"),
        pytest.param(VALID_DER[:-1], id="truncated"),
        pytest.param(VALID_DER + b"\x00", id="trailing-byte"),
        pytest.param(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", id="bad-pem"),
        pytest.param(b"not a csr at all", id="text"),
        pytest.param(VALID_DER.replace(b"\x02\x01\x00", b"\x02\x01\x01", 1), id="version-2"),
        pytest.param(
            VALID_DER.replace(b"\x06\x03\x55\x04\x03\x0c", b"\x06\x03\x55\x04\x03\x03", 1),
            id="bit-string-common-name",
        ),
    ],
)
def test_malformed_input_is_refused(data: bytes) -> None:
    with pytest.raises(CsrError) as e:
        parse_csr(data)
    assert e.value.code == "csr_malformed"


@pytest.mark.parametrize(
    ("key", "found"),
    [
        pytest.param(rsa.generate_private_key(65537, 2048), "RSA-2048", id="rsa-2048"),
        pytest.param(ec.generate_private_key(ec.SECP384R1()), "secp384r1", id="p-384"),
        pytest.param(ec.generate_private_key(ec.SECP256K1()), "secp256k1", id="secp256k1"),
        pytest.param(ed25519.Ed25519PrivateKey.generate(), "Ed25519", id="ed25519"),
    ],
)
def test_only_p256_keys_are_accepted(key: object, found: str) -> None:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()

    with pytest.raises(CsrError) as e:
        parse_csr(make_csr(key, algorithm))

    assert e.value.code == "key_unsupported"
    assert found in e.value.message
    assert "P-256" in e.value.message


@pytest.mark.parametrize("algorithm", [hashes.SHA384(), hashes.SHA512(), hashes.SHA224()])
def test_only_ecdsa_with_sha256_is_accepted(algorithm: hashes.HashAlgorithm) -> None:
    with pytest.raises(CsrError) as e:
        parse_csr(make_csr(P256_KEY, algorithm))
    assert e.value.code == "csr_signature_invalid"
    assert "SHA-256" in e.value.message


def test_a_signature_that_does_not_verify_is_no_proof_of_possession() -> None:
    tampered = VALID_DER.replace(b"aaaaaaaa", b"aaaaaaab")
    assert tampered != VALID_DER

    with pytest.raises(CsrError) as e:
        parse_csr(tampered)

    assert e.value.code == "csr_signature_invalid"


def test_csr_errors_are_input_errors_with_http_400() -> None:
    with pytest.raises(InputError) as e:
        parse_csr(b"junk")
    assert e.value.http_status == 400
    assert e.value.as_dict()["code"] == "csr_malformed"


# -- hypothesis: parse or refuse cleanly, never crash --------------------------------------

CODES = {
    "csr_malformed",
    "csr_too_large",
    "key_unsupported",
    "key_invalid",
    "csr_signature_invalid",
}


def _parse_or_refuse(data: bytes) -> None:
    try:
        parsed = parse_csr(data)
    except InputError as e:
        refused: InputError | None = e
    else:
        refused = None
        assert isinstance(parsed.public_key.curve, ec.SECP256R1)
        assert parsed.csr.is_signature_valid
    assert refused is None or refused.code in CODES


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_parse_or_raise_input_error(data: bytes) -> None:
    _parse_or_refuse(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_der_prefixed_junk_parses_or_raises_input_error(tail: bytes) -> None:
    _parse_or_refuse(b"\x30\x82" + len(tail).to_bytes(2, "big") + tail)


@st.composite
def mutated_csr(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_DER)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]))
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "set":
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "delete" and len(data) > 1:
            del data[position]
        elif action == "insert":
            data.insert(position, draw(st.integers(min_value=0, max_value=255)))
        elif action == "truncate":
            del data[position:]
            if not data:
                break
    return bytes(data)


@settings(max_examples=600, deadline=None)
@given(mutated_csr())
def test_mutated_valid_csrs_parse_or_raise_input_error(data: bytes) -> None:
    _parse_or_refuse(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_mutated_pem_parses_or_raises_input_error(noise: bytes) -> None:
    pem = x509.load_der_x509_csr(VALID_DER).public_bytes(Encoding.PEM)
    _parse_or_refuse(pem[:40] + noise + pem[40:])


def test_a_point_off_the_curve_is_refused_as_an_invalid_key() -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    der = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    at = der.index(point)
    forged = bytearray(der)
    forged[at + 64] ^= 0x01  # last byte of Y: the point leaves the curve
    with pytest.raises(CsrError) as caught:
        parse_csr(bytes(forged))
    assert caught.value.code == "key_invalid"
