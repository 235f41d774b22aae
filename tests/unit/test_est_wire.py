"""EST wire formats: base64 PKCS#10 in, certs-only PKCS#7 out, the unit named by the subject."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from birthright.ca.csr import CsrError, parse_csr
from birthright.est.wire import certs_only, csr_identity, csr_serial, decode_csr_body
from tests.unit.fakes import SoftwareIssuer


def _csr(*attrs: x509.NameAttribute[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(attrs)))
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_certs_only_round_trips_in_64_column_base64() -> None:
    chain = SoftwareIssuer().chain()
    body = certs_only(chain)
    assert max(len(line) for line in body.splitlines()) <= 64
    assert set(pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))) == set(chain)


def test_a_base64_body_with_line_breaks_decodes_and_names_chip_and_serial() -> None:
    der = _csr(
        x509.NameAttribute(NameOID.COMMON_NAME, "CHIP-1"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "S-1"),
    )
    parsed = parse_csr(decode_csr_body(base64.encodebytes(der)))
    identity = csr_identity(parsed)
    assert (identity.chip_id, identity.serial) == ("CHIP-1", "S-1")
    assert csr_serial(parsed) == "S-1"


@pytest.mark.parametrize(
    ("attrs", "code"),
    [
        ((), "est_chip_id_missing"),
        ((x509.NameAttribute(NameOID.COMMON_NAME, "bad chip id!"),), "est_chip_id_missing"),
        (
            (
                x509.NameAttribute(NameOID.COMMON_NAME, "C"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, "bad/serial"),
            ),
            "csr_malformed",
        ),
    ],
    ids=["no_cn", "bad_cn", "bad_serial"],
)
def test_a_subject_that_does_not_name_the_unit_is_refused(
    attrs: tuple[x509.NameAttribute[str], ...], code: str
) -> None:
    with pytest.raises(CsrError) as caught:
        csr_identity(parse_csr(_csr(*attrs)))
    assert caught.value.code == code


@given(st.binary(max_size=400))
def test_decode_or_refuse_never_crashes(body: bytes) -> None:
    try:
        der = decode_csr_body(body)
    except CsrError:
        return
    assert der  # base64 that decoded to something: parse_csr judges it next
