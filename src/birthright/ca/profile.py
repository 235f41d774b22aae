"""The device certificate profile, after IEEE 802.1AR (IDevID); DESIGN.md §4.

Pure: every input is a value (keys, certificates, ``now``); nothing here reads a clock, a file
or a setting.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from birthright.ca import der
from birthright.errors import InputError

#: id-on-hardwareModuleName, RFC 4108 §5.
HARDWARE_MODULE_NAME_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")
#: Placeholder hardware type under a *placeholder* private-enterprise arc (55555 is not ours):
#: a manufacturer registers its own PEN with IANA and sets ``DeviceProfile.hardware_type_oid``.
DEFAULT_HARDWARE_TYPE_OID = "1.3.6.1.4.1.55555.1.1"
#: "No well-defined expiration date" (RFC 5280 §4.1.2.5; IEEE 802.1AR): 99991231235959Z.
NO_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

#: X.520 PrintableString, the string type of serialNumber (2.5.4.5).
_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")
_UB_SERIAL_NUMBER = 64
_UB_COMMON_NAME = 64
_UB_ORGANIZATION = 64
_MAX_CHIP_ID_BYTES = 64


class ProfileError(InputError):
    """A value cannot be placed in a device certificate."""

    code = "profile_invalid"


@dataclass(frozen=True)
class DeviceProfile:
    """What every device certificate of one product line carries besides its key and serials."""

    organization: str
    product: str
    hardware_type_oid: str = DEFAULT_HARDWARE_TYPE_OID
    not_after: datetime = NO_EXPIRY
    crl_url: str | None = None
    ocsp_url: str | None = None
    #: AIA caIssuers: must serve a DER certificate (or certs-only CMS), RFC 5280 §4.2.2.1.
    ca_issuers_url: str | None = None
    #: DER of ``hardware_type_oid``, checked and encoded once.
    hardware_type_der: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < len(self.organization) <= _UB_ORGANIZATION:
            raise ProfileError(f"organization must be 1-{_UB_ORGANIZATION} characters")
        if not self.product:
            raise ProfileError("product must not be empty")
        if self.not_after.tzinfo is None:
            raise ProfileError("not_after must be timezone-aware")
        object.__setattr__(self, "hardware_type_der", der.encode_oid(self.hardware_type_oid))


def hardware_module_name(hardware_type_der: bytes, chip_id: str) -> x509.OtherName:
    """SAN otherName ``HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }``.

    ``hwSerialNum`` holds the chip id's ASCII bytes.
    """
    if not (chip_id.isascii() and chip_id.isprintable() and 0 < len(chip_id) <= _MAX_CHIP_ID_BYTES):
        raise ProfileError(
            f"a chip id is 1-{_MAX_CHIP_ID_BYTES} printable ASCII characters", code="bad_chip_id"
        )
    serial = der.tlv(der.TAG_OCTET_STRING, chip_id.encode("ascii"))
    value = der.tlv(der.TAG_SEQUENCE, hardware_type_der + serial)
    return x509.OtherName(HARDWARE_MODULE_NAME_OID, value)


def parse_hardware_module_name(cert: x509.Certificate) -> tuple[x509.ObjectIdentifier, str]:
    """``(hwType, chip id)`` from a device certificate's SAN; ``InputError`` when absent/bad."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise ProfileError("the certificate has no subjectAltName", code="hwname_missing") from e
    names = [
        n for n in san.get_values_for_type(x509.OtherName) if n.type_id == HARDWARE_MODULE_NAME_OID
    ]
    if len(names) != 1:
        raise ProfileError(
            f"expected one hardwareModuleName, found {len(names)}", code="hwname_missing"
        )
    data = names[0].value
    body, end = der.expect(data, 0, der.TAG_SEQUENCE)
    if end != len(data):
        raise der.DerError("trailing data after hardwareModuleName")
    oid_body, pos = der.expect(body, 0, der.TAG_OID)
    serial, pos = der.expect(body, pos, der.TAG_OCTET_STRING)
    if pos != len(body):
        raise der.DerError("trailing data inside hardwareModuleName")
    try:
        chip_id = serial.decode("ascii")
    except UnicodeDecodeError as e:
        raise ProfileError("hwSerialNum is not ASCII", code="bad_chip_id") from e
    return x509.ObjectIdentifier(der.decode_oid(oid_body)), chip_id


def device_subject(profile: DeviceProfile, product_serial: str) -> x509.Name:
    """``O=<organization>, CN=<product> <serial>, serialNumber=<serial>``."""
    if not 0 < len(product_serial) <= _UB_SERIAL_NUMBER or not set(product_serial) <= _PRINTABLE:
        raise ProfileError(
            f"a product serial is 1-{_UB_SERIAL_NUMBER} PrintableString characters "
            "(letters, digits, space and '()+,-./:=?)",
            code="bad_serial",
        )
    common_name = f"{profile.product} {product_serial}"
    if len(common_name) > _UB_COMMON_NAME:
        raise ProfileError(f"the common name {common_name!r} exceeds {_UB_COMMON_NAME} characters")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, profile.organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, product_serial),
        ]
    )


def build_device_certificate(
    *,
    profile: DeviceProfile,
    public_key: ec.EllipticCurvePublicKey,
    product_serial: str,
    chip_id: str,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    policy_oids: Sequence[str] = (),
) -> x509.Certificate:
    """Sign a device certificate for ``public_key`` (ECDSA P-256, SHA-256).

    ``policy_oids`` (non-critical certificatePolicies) say what was proven about the key at
    enrollment, e.g. that it lives in a genuine secure element."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ProfileError("device keys must be EC P-256", code="key_unsupported")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    builder = (
        x509.CertificateBuilder()
        .subject_name(device_subject(profile, product_serial))
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(profile.not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([hardware_module_name(profile.hardware_type_der, chip_id)]),
            critical=False,
        )
    )
    for extension, critical in _fixed_extensions(profile, issuer_cert):
        builder = builder.add_extension(extension, critical=critical)
    if policy_oids:
        policies = [x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policy_oids]
        builder = builder.add_extension(x509.CertificatePolicies(policies), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


DEVICE_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@functools.lru_cache(maxsize=32)
def _fixed_extensions(
    profile: DeviceProfile, issuer_cert: x509.Certificate
) -> tuple[tuple[x509.ExtensionType, bool], ...]:
    """The extensions every device certificate of ``profile`` under ``issuer_cert`` shares."""
    fixed: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (DEVICE_KEY_USAGE, True),
        (authority_key_identifier(issuer_cert), False),
    ]
    if profile.crl_url:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(profile.crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        fixed.append((x509.CRLDistributionPoints([point]), False))
    access = _access_descriptions(profile)
    if access:
        fixed.append((x509.AuthorityInformationAccess(access), False))
    return tuple(fixed)


def authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI naming the issuer's SKI (or one derived from its key when it has none)."""
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_cert.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _access_descriptions(profile: DeviceProfile) -> list[x509.AccessDescription]:
    out = []
    if profile.ocsp_url:
        out.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(profile.ocsp_url)
            )
        )
    if profile.ca_issuers_url:
        out.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(profile.ca_issuers_url),
            )
        )
    return out
