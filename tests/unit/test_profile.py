"""The device certificate profile (DESIGN §4), the CA hierarchy and chain verification.

Real keys and real signatures throughout, with a frozen clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)
from hypothesis import given
from hypothesis import strategies as st

from birthright.ca import der
from birthright.ca.authority import FactoryCa
from birthright.ca.hierarchy import init_hierarchy
from birthright.ca.profile import (
    DEFAULT_HARDWARE_TYPE_OID,
    HARDWARE_MODULE_NAME_OID,
    NO_EXPIRY,
    DeviceProfile,
    ProfileError,
    build_device_certificate,
    parse_hardware_module_name,
)
from birthright.ca.verify import ChainUntrusted
from birthright.errors import ConfigError, TrustError
from birthright.se.signer import ExternalKeySigner

NOW = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
PROFILE = DeviceProfile(
    organization="Acme Devices",
    product="BR-SENSOR-1",
    crl_url="http://ca.example/crl/issuing.crl",
    ocsp_url="http://ca.example/ocsp",
)


@dataclass(frozen=True)
class Hierarchy:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey

    def ca(self, profile: DeviceProfile = PROFILE) -> FactoryCa:
        return FactoryCa(
            root_cert=self.root,
            issuing_cert=self.issuing,
            issuing_key=self.issuing_key,
            profile=profile,
        )


def new_hierarchy(organization: str = "Acme Devices") -> Hierarchy:
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    root, issuing = init_hierarchy(
        organization=organization,
        now=NOW,
        root_key=ec.generate_private_key(ec.SECP256R1()),
        issuing_key=issuing_key,
    )
    return Hierarchy(root, issuing, issuing_key)


HIERARCHY = new_hierarchy()
DEVICE_KEY = ec.generate_private_key(ec.SECP256R1())


def issue(
    ca: FactoryCa | None = None, *, serial: str = "BRS-000042", chip_id: str = "CHIP-0042"
) -> x509.Certificate:
    return (ca or HIERARCHY.ca()).issue_device(
        public_key=DEVICE_KEY.public_key(), product_serial=serial, chip_id=chip_id, now=NOW
    )


LEAF = issue()


E = TypeVar("E", bound=x509.ExtensionType)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


# -- device profile -------------------------------------------------------------------------


def test_subject_is_organization_model_and_serial() -> None:
    subject = LEAF.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme Devices"
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "BR-SENSOR-1 BRS-000042"
    serial = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0]
    assert serial.value == "BRS-000042"
    assert serial.oid.dotted_string == "2.5.4.5"
    assert LEAF.issuer == HIERARCHY.issuing.subject


def test_san_holds_hardware_module_name_with_chip_id() -> None:
    san = ext(LEAF, x509.SubjectAlternativeName)
    assert not san.critical
    (name,) = san.value.get_values_for_type(x509.OtherName)
    assert name.type_id == HARDWARE_MODULE_NAME_OID
    hw_type, chip_id = parse_hardware_module_name(LEAF)
    assert hw_type.dotted_string == DEFAULT_HARDWARE_TYPE_OID
    assert chip_id == "CHIP-0042"
    # SEQUENCE { OID 1.3.6.1.4.1.55555.1.1, OCTET STRING "CHIP-0042" }, byte for byte.
    expected = bytes.fromhex("3017060a2b0601040183b203010104") + b"\x09CHIP-0042"
    assert name.value == expected


def test_validity_is_issuance_until_no_expiry() -> None:
    assert LEAF.not_valid_before_utc == NOW.replace(microsecond=0)
    assert LEAF.not_valid_after_utc == NO_EXPIRY
    # GeneralizedTime 99991231235959Z, as IEEE 802.1AR and RFC 5280 §4.1.2.5 ask.
    assert b"\x18\x0f99991231235959Z" in LEAF.tbs_certificate_bytes


def test_not_after_is_configurable() -> None:
    not_after = datetime(2046, 1, 1, tzinfo=UTC)
    profile = DeviceProfile(organization="Acme Devices", product="P", not_after=not_after)
    assert issue(HIERARCHY.ca(profile)).not_valid_after_utc == not_after


def test_basic_constraints_ca_false_critical() -> None:
    bc = ext(LEAF, x509.BasicConstraints)
    assert bc.critical
    assert bc.value == x509.BasicConstraints(ca=False, path_length=None)


def test_key_usage_digital_signature_and_key_agreement_critical() -> None:
    ku = ext(LEAF, x509.KeyUsage)
    assert ku.critical
    value = ku.value
    assert isinstance(value, x509.KeyUsage)
    assert value.digital_signature
    assert value.key_agreement
    assert not value.key_cert_sign
    assert not value.crl_sign
    assert not value.key_encipherment
    assert not value.content_commitment
    assert not value.data_encipherment


def test_key_identifiers_link_device_to_issuing_ca() -> None:
    ski = ext(LEAF, x509.SubjectKeyIdentifier)
    aki = ext(LEAF, x509.AuthorityKeyIdentifier)
    issuer_ski = ext(HIERARCHY.issuing, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert not aki.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(DEVICE_KEY.public_key())
    assert aki.value.key_identifier == issuer_ski.value.digest


def test_crl_distribution_point_and_ocsp_urls() -> None:
    cdp = ext(LEAF, x509.CRLDistributionPoints)
    assert not cdp.critical
    (point,) = cdp.value
    assert point.full_name == [x509.UniformResourceIdentifier("http://ca.example/crl/issuing.crl")]
    aia = ext(LEAF, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.OCSP, "http://ca.example/ocsp")
    ]


def test_ca_issuers_is_optional() -> None:
    profile = DeviceProfile(
        organization="Acme Devices", product="P", ca_issuers_url="http://ca.example/issuing.der"
    )
    aia = ext(issue(HIERARCHY.ca(profile)), x509.AuthorityInformationAccess).value
    assert [d.access_method for d in aia] == [AuthorityInformationAccessOID.CA_ISSUERS]


def test_without_urls_there_is_no_cdp_and_no_aia() -> None:
    cert = issue(HIERARCHY.ca(DeviceProfile(organization="Acme Devices", product="P")))
    oids = {e.oid for e in cert.extensions}
    assert ExtensionOID.CRL_DISTRIBUTION_POINTS not in oids
    assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS not in oids


def test_exactly_the_profile_extensions_are_present() -> None:
    assert {e.oid for e in LEAF.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }


def test_serials_are_random_unique_and_at_least_64_bits() -> None:
    serials = [issue(serial=f"BRS-{i:06d}").serial_number for i in range(50)]
    assert len(set(serials)) == len(serials)
    assert all(s >= 2**63 for s in serials)  # fails with probability ~50 * 2^-96
    assert all(0 < s < 2**159 for s in serials)  # positive and at most 20 octets


def test_ecdsa_p256_sha256_signed_by_issuing_ca() -> None:
    assert LEAF.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    LEAF.verify_directly_issued_by(HIERARCHY.issuing)
    assert LEAF.version == x509.Version.v3


@pytest.mark.parametrize(
    ("serial", "chip_id", "code"),
    [
        pytest.param("", "CHIP-1", "bad_serial", id="empty-serial"),
        pytest.param("BRS_000001", "CHIP-1", "bad_serial", id="underscore-not-printablestring"),
        pytest.param("BRS-é", "CHIP-1", "bad_serial", id="non-ascii-serial"),
        pytest.param("S" * 65, "CHIP-1", "bad_serial", id="serial-too-long"),
        pytest.param("BRS-1", "", "bad_chip_id", id="empty-chip-id"),
        pytest.param("BRS-1", "chip\n1", "bad_chip_id", id="control-char-chip-id"),
        pytest.param("BRS-1", "ü", "bad_chip_id", id="non-ascii-chip-id"),
        pytest.param("BRS-1", "c" * 65, "bad_chip_id", id="chip-id-too-long"),
    ],
)
def test_values_that_do_not_fit_the_profile_are_refused(
    serial: str, chip_id: str, code: str
) -> None:
    with pytest.raises(ProfileError) as e:
        issue(serial=serial, chip_id=chip_id)
    assert e.value.code == code


def test_only_p256_device_keys() -> None:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ProfileError) as e:
        build_device_certificate(
            profile=PROFILE,
            public_key=key,
            product_serial="BRS-1",
            chip_id="C",
            issuer_cert=HIERARCHY.issuing,
            issuer_key=HIERARCHY.issuing_key,
            now=NOW,
        )
    assert e.value.code == "key_unsupported"


def test_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        HIERARCHY.ca().issue_device(
            public_key=DEVICE_KEY.public_key(),
            product_serial="BRS-1",
            chip_id="C",
            now=NOW.replace(tzinfo=None),
        )


def test_missing_hardware_module_name_is_reported() -> None:
    with pytest.raises(ProfileError) as e:
        parse_hardware_module_name(HIERARCHY.issuing)
    assert e.value.code == "hwname_missing"


def test_issuing_key_may_live_outside_the_process() -> None:
    """Any ``EllipticCurvePrivateKey`` signs, including an ``ExternalKeySigner`` (token path)."""
    software = HIERARCHY.issuing_key
    external = ExternalKeySigner(
        software.public_key(),
        lambda digest: software.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
    )
    ca = FactoryCa(
        root_cert=HIERARCHY.root,
        issuing_cert=HIERARCHY.issuing,
        issuing_key=external,
        profile=PROFILE,
    )
    cert = issue(ca)
    cert.verify_directly_issued_by(HIERARCHY.issuing)
    ca.verify_chain(cert, [HIERARCHY.issuing], NOW)


# -- hierarchy ------------------------------------------------------------------------------


def test_root_is_a_self_signed_ca() -> None:
    root = HIERARCHY.root
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical
    assert bc.value == x509.BasicConstraints(ca=True, path_length=None)
    ku = ext(root, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=25 * 365)
    assert root.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256


def test_issuing_ca_has_path_length_zero_and_key_ids() -> None:
    issuing = HIERARCHY.issuing
    issuing.verify_directly_issued_by(HIERARCHY.root)
    bc = ext(issuing, x509.BasicConstraints)
    assert bc.critical
    assert bc.value == x509.BasicConstraints(ca=True, path_length=0)
    ku = ext(issuing, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    root_ski = ext(HIERARCHY.root, x509.SubjectKeyIdentifier).value
    aki = ext(issuing, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    lifetime = issuing.not_valid_after_utc - issuing.not_valid_before_utc
    assert timedelta(days=20 * 365) <= lifetime < timedelta(days=21 * 365)
    assert issuing.not_valid_after_utc <= HIERARCHY.root.not_valid_after_utc


def test_ca_keys_must_be_p256() -> None:
    with pytest.raises(ConfigError) as e:
        init_hierarchy(
            organization="Acme",
            now=NOW,
            root_key=ec.generate_private_key(ec.SECP384R1()),
            issuing_key=HIERARCHY.issuing_key,
        )
    assert e.value.code == "ca_key_type"


def test_factory_ca_refuses_a_key_that_is_not_the_issuing_key() -> None:
    with pytest.raises(ConfigError) as e:
        FactoryCa(
            root_cert=HIERARCHY.root,
            issuing_cert=HIERARCHY.issuing,
            issuing_key=ec.generate_private_key(ec.SECP256R1()),
            profile=PROFILE,
        )
    assert e.value.code == "ca_key_mismatch"


def test_factory_ca_refuses_an_issuing_ca_from_another_root() -> None:
    other = new_hierarchy()
    with pytest.raises(ConfigError) as e:
        FactoryCa(
            root_cert=HIERARCHY.root,
            issuing_cert=other.issuing,
            issuing_key=other.issuing_key,
            profile=PROFILE,
        )
    assert e.value.code == "ca_chain_broken"


def test_chain_is_issuing_then_root() -> None:
    assert HIERARCHY.ca().chain() == [HIERARCHY.issuing, HIERARCHY.root]


# -- chain verification ---------------------------------------------------------------------


def test_issued_certificate_chains_to_the_root() -> None:
    HIERARCHY.ca().verify_chain(LEAF, [HIERARCHY.issuing], NOW + timedelta(days=1))
    HIERARCHY.ca().verify_chain(LEAF, HIERARCHY.ca().chain(), NOW + timedelta(days=365 * 19))


def test_certificate_from_a_foreign_ca_with_the_same_names_is_refused() -> None:
    foreign = new_hierarchy()  # same organization, so identical subject and issuer names
    forged = issue(foreign.ca())
    assert forged.issuer == LEAF.issuer

    with pytest.raises(ChainUntrusted) as e:
        HIERARCHY.ca().verify_chain(forged, [foreign.issuing], NOW)
    assert e.value.code == "chain_untrusted"
    assert isinstance(e.value, TrustError)
    with pytest.raises(ChainUntrusted):
        HIERARCHY.ca().verify_chain(forged, [HIERARCHY.issuing], NOW)


@pytest.mark.parametrize(
    ("intermediates", "when"),
    [
        pytest.param([], NOW, id="missing-intermediate"),
        pytest.param([HIERARCHY.issuing], NOW - timedelta(seconds=2), id="before-not-before"),
        pytest.param([HIERARCHY.issuing], NOW + timedelta(days=365 * 21), id="issuing-expired"),
    ],
)
def test_incomplete_or_out_of_time_chains_are_refused(
    intermediates: list[x509.Certificate], when: datetime
) -> None:
    with pytest.raises(ChainUntrusted):
        HIERARCHY.ca().verify_chain(LEAF, intermediates, when)


def test_a_ca_certificate_is_not_accepted_as_a_device() -> None:
    with pytest.raises(ChainUntrusted):
        HIERARCHY.ca().verify_chain(HIERARCHY.issuing, [], NOW)


# -- the small DER codec --------------------------------------------------------------------


def test_oid_encoding_matches_a_known_vector() -> None:
    assert der.encode_oid("1.3.6.1.5.5.7.8.4") == bytes.fromhex("06082b06010505070804")
    assert der.encode_oid("2.999.3") == bytes.fromhex("0603883703")


@given(
    st.tuples(st.integers(0, 1), st.integers(0, 39)) | st.tuples(st.just(2), st.integers(0, 2**40)),
    st.lists(st.integers(0, 2**70), max_size=8),
)
def test_oid_round_trips(head: tuple[int, int], rest: list[int]) -> None:
    dotted = ".".join(str(a) for a in [*head, *rest])
    body, _ = der.expect(der.encode_oid(dotted), 0, der.TAG_OID)
    assert der.decode_oid(body) == dotted
    if all(a < 2**63 for a in [*head, *rest]):  # cryptography's parser stops at 64-bit arcs
        assert x509.ObjectIdentifier(dotted).dotted_string == dotted


@pytest.mark.parametrize("bad", ["", "1", "3.1", "1.40", "1.2.x", "1.-2"])
def test_invalid_oids_are_refused(bad: str) -> None:
    with pytest.raises(der.DerError):
        der.encode_oid(bad)


@given(st.binary(max_size=64))
def test_der_reader_reads_or_raises_der_error(data: bytes) -> None:
    try:
        tag, value, end = der.read_tlv(data)
    except der.DerError:
        return
    assert end <= len(data)
    assert der.tlv(tag, value) == data[:end]


@given(st.binary(max_size=300))
def test_length_encoding_round_trips(value: bytes) -> None:
    encoded = der.tlv(der.TAG_OCTET_STRING, value)
    assert der.read_tlv(encoded) == (der.TAG_OCTET_STRING, value, len(encoded))
