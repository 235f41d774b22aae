"""The hand-rolled TBSCertList encoder, pinned byte for byte against ``cryptography``'s builder
and checked by ``openssl crl``."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.ca import crl, der
from birthright.ca.profile import authority_key_identifier
from birthright.revocation.model import Reason, RevokedEntry

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "birthright test"),
        x509.NameAttribute(NameOID.COMMON_NAME, "issuing CA"),
    ]
)
CA = (
    x509.CertificateBuilder()
    .subject_name(NAME)
    .issuer_name(NAME)
    .public_key(KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW - timedelta(days=1))
    .not_valid_after(NOW + timedelta(days=3650))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .add_extension(x509.SubjectKeyIdentifier.from_public_key(KEY.public_key()), critical=False)
    .sign(KEY, hashes.SHA256())
)


def ours(entries: list[RevokedEntry], *, number: int = 7) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(
        crl.build_crl(
            issuer_cert=CA,
            issuer_key=KEY,
            entries=entries,
            number=number,
            this_update=NOW,
            next_update=NOW + timedelta(days=1),
        )
    )


def reference_tbs(entries: list[RevokedEntry], *, number: int = 7) -> bytes:
    """What ``cryptography``'s builder signs for the same CRL."""
    revoked = []
    for cert_serial, revoked_at, reason in entries:
        builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(cert_serial, 16))
            .revocation_date(revoked_at.replace(microsecond=0))
        )
        if reason is not Reason.unspecified:
            builder = builder.add_extension(x509.CRLReason(reason.flag), critical=False)
        revoked.append(builder.build())
    return (
        x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
        .issuer_name(NAME)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(CA), critical=False)
        .sign(KEY, hashes.SHA256())
        .tbs_certlist_bytes
    )


EDGES = [
    ("one", "1"),
    ("top-bit-of-one-octet", "80"),
    ("seven-bits", "7f"),
    ("odd-length", "abc"),
    ("leading-zero-digits", "00ff"),
    ("high-bit-needs-sign-octet", "ff" * 8),
    ("largest-20-octets", "7f" + "ff" * 19),
    ("typical-120-bit", "a1" * 15),
]


@pytest.mark.parametrize("cert_serial", [s for _, s in EDGES], ids=[i for i, _ in EDGES])
def test_serials_encode_as_cryptography_does(cert_serial: str) -> None:
    entries = [RevokedEntry(cert_serial, NOW, Reason.keyCompromise)]
    parsed = ours(entries)
    assert parsed.tbs_certlist_bytes == reference_tbs(entries)
    assert parsed[0].serial_number == int(cert_serial, 16)


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_every_reason_encodes_as_cryptography_does(reason: Reason) -> None:
    entries = [RevokedEntry("1234", NOW, reason)]
    parsed = ours(entries)
    assert parsed.tbs_certlist_bytes == reference_tbs(entries)
    if reason is Reason.unspecified:
        assert len(parsed[0].extensions) == 0  # left out, as RFC 5280 §5.3.1 recommends
    else:
        assert parsed[0].extensions.get_extension_for_class(x509.CRLReason).value.reason is (
            reason.flag
        )


@pytest.mark.parametrize(
    ("when", "tag"),
    [
        (datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), der.TAG_UTC_TIME),
        (datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), der.TAG_UTC_TIME),
        (datetime(2050, 1, 1, tzinfo=UTC), der.TAG_GENERALIZED_TIME),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), der.TAG_GENERALIZED_TIME),
    ],
    ids=["1999", "end-of-2049", "2050", "9999"],
)
def test_times_switch_to_generalized_time_in_2050(when: datetime, tag: int) -> None:
    assert der.encode_time(when)[0] == tag
    entries = [RevokedEntry("42", when, Reason.superseded)]
    assert ours(entries).tbs_certlist_bytes == reference_tbs(entries)


def test_an_empty_crl_has_no_revoked_certificates_field() -> None:
    parsed = ours([])
    assert parsed.tbs_certlist_bytes == reference_tbs([])
    assert len(parsed) == 0
    assert parsed.is_signature_valid(KEY.public_key())


def test_headers_and_extensions() -> None:
    parsed = ours([RevokedEntry("5", NOW, Reason.certificateHold)], number=2**70)
    assert parsed.issuer == NAME
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2**70
    assert parsed.last_update_utc == NOW
    assert parsed.next_update_utc == NOW + timedelta(days=1)
    assert parsed.signature_hash_algorithm is not None
    assert parsed.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize(
    "cert_serial",
    ["80" + "00" * 19, "1" + "0" * 40, "xyz", ""],
    ids=["160-bit", "161-bit", "hex", "empty"],
)
def test_bad_serials_are_refused(cert_serial: str) -> None:
    with pytest.raises(ValueError, match="serial"):
        ours([RevokedEntry(cert_serial, NOW, Reason.keyCompromise)])


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ours([RevokedEntry("1", NOW.replace(tzinfo=None), Reason.keyCompromise)])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=2**159 - 1),
            st.datetimes(
                min_value=datetime(1950, 1, 1),
                max_value=datetime(9999, 12, 31),
                timezones=st.just(UTC),
            ),
            st.sampled_from(list(Reason)),
        ),
        max_size=40,
    )
)
def test_any_entries_encode_as_cryptography_does(
    rows: list[tuple[int, datetime, Reason]],
) -> None:
    entries = [RevokedEntry(format(s, "x"), when, reason) for s, when, reason in rows]
    parsed = ours(entries)
    assert parsed.tbs_certlist_bytes == reference_tbs(entries)
    assert parsed.is_signature_valid(KEY.public_key())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_a_large_crl(tmp_path: Path) -> None:
    entries = [
        RevokedEntry(format((i * 0x9E3779B97F4A7C15) | 1 << 119, "x"), NOW, Reason.keyCompromise)
        for i in range(1, 5001)
    ]
    der_path = tmp_path / "crl.der"
    ca_path = tmp_path / "ca.pem"
    der_path.write_bytes(
        crl.build_crl(
            issuer_cert=CA,
            issuer_key=KEY,
            entries=entries,
            number=3,
            this_update=NOW,
            next_update=NOW + timedelta(days=1),
        )
    )
    ca_path.write_bytes(CA.public_bytes(Encoding.PEM))
    result = subprocess.run(
        [
            str(shutil.which("openssl")),
            "crl",
            "-inform",
            "DER",
            "-in",
            str(der_path),
            "-CAfile",
            str(ca_path),
            "-noout",
            "-text",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout
    assert result.stdout.count("Serial Number:") == len(entries)
