"""Pins undocumented ``cryptography`` behaviour: its X.509 builders sign with any
``ec.EllipticCurvePrivateKey`` subclass by calling its ``sign()``. Our token and TPM keys
depend on that; if a ``cryptography`` upgrade breaks it, these tests say so first."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from birthright.errors import DeviceError
from birthright.se.signer import ExternalKeySigner

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "external key test")])


class SoftwareChip:
    """A software key standing in for a chip: it only ever sees digests."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.digests: list[bytes] = []

    def sign_digest(self, digest: bytes) -> bytes:
        self.digests.append(digest)
        return self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    def signer(self) -> ExternalKeySigner:
        return ExternalKeySigner(self.key.public_key(), self.sign_digest)


def _cert(signer: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(signer.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _verify_csr(signer: ExternalKeySigner, chip: SoftwareChip) -> None:
    csr = x509.CertificateSigningRequestBuilder().subject_name(NAME).sign(signer, hashes.SHA256())
    assert csr.is_signature_valid
    assert csr.public_key() == chip.key.public_key()


def _verify_certificate(signer: ExternalKeySigner, chip: SoftwareChip) -> None:
    cert = _cert(signer)
    cert.verify_directly_issued_by(cert)  # self-signed: checks the signature
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"


def _verify_crl(signer: ExternalKeySigner, chip: SoftwareChip) -> None:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(NAME)
        .last_update(NOW)
        .next_update(NOW + timedelta(hours=1))
        .sign(signer, hashes.SHA256())
    )
    assert crl.is_signature_valid(chip.key.public_key())


def _verify_ocsp(signer: ExternalKeySigner, chip: SoftwareChip) -> None:
    issuer = _cert(signer)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=issuer,
            issuer=issuer,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
        .sign(signer, hashes.SHA256())
    )
    chip.key.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


@pytest.mark.parametrize(
    "build_and_verify",
    [_verify_csr, _verify_certificate, _verify_crl, _verify_ocsp],
    ids=["csr", "certificate", "crl", "ocsp-response"],
)
def test_builders_sign_through_the_external_key(
    build_and_verify: Callable[[ExternalKeySigner, SoftwareChip], None],
) -> None:
    chip = SoftwareChip()
    build_and_verify(chip.signer(), chip)
    assert chip.digests, "the builder must have called our sign()"
    assert all(len(d) == 32 for d in chip.digests), "the chip sees SHA-256 digests only"


def test_plain_sign_hashes_on_host_and_verifies() -> None:
    chip = SoftwareChip()
    signature = chip.signer().sign(b"challenge", ec.ECDSA(hashes.SHA256()))
    chip.key.public_key().verify(signature, b"challenge", ec.ECDSA(hashes.SHA256()))
    h = hashes.Hash(hashes.SHA256())
    h.update(b"challenge")
    assert chip.digests == [h.finalize()]


def test_prehashed_digest_is_passed_through() -> None:
    chip = SoftwareChip()
    digest = b"\x01" * 32
    signature = chip.signer().sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    chip.key.public_key().verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    assert chip.digests == [digest]


@pytest.mark.parametrize(
    "algorithm",
    [ec.ECDSA(hashes.SHA384()), ec.ECDSA(hashes.SHA1())],  # noqa: S303 - must be refused
    ids=["sha384", "sha1"],
)
def test_other_hashes_are_refused(algorithm: ec.EllipticCurveSignatureAlgorithm) -> None:
    with pytest.raises(DeviceError, match="unsupported hash"):
        SoftwareChip().signer().sign(b"data", algorithm)


def test_builder_with_unsupported_hash_fails_cleanly() -> None:
    builder = x509.CertificateSigningRequestBuilder().subject_name(NAME)
    with pytest.raises(DeviceError):
        builder.sign(SoftwareChip().signer(), hashes.SHA384())


@pytest.mark.parametrize(
    "export",
    [
        lambda k: k.private_numbers(),
        lambda k: k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        lambda k: k.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key()),
    ],
    ids=["private_numbers", "private_bytes", "exchange"],
)
def test_the_secret_cannot_be_exported(export: Callable[[ExternalKeySigner], object]) -> None:
    with pytest.raises(DeviceError):
        export(SoftwareChip().signer())


def test_key_properties_and_copies() -> None:
    chip = SoftwareChip()
    signer = chip.signer()
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    assert signer.curve.name == "secp256r1"
    assert signer.key_size == 256
    assert signer.public_key() == chip.key.public_key()
    assert copy.copy(signer) is signer
    assert copy.deepcopy(signer) is signer
