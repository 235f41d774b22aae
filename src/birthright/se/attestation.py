"""A PKCS#11 chip's vendor attestation: its factory attestation key and vendor certificate.

On the token: a P-256 key pair labelled ``attestation`` (SENSITIVE, never EXTRACTABLE, sign
only) and the vendor's certificate for it, labelled ``attestation-cert`` (intermediates, if
the vendor has any, as ``attestation-chain-1``, ``-2``, ...). ``vendor_proof`` has the
attestation key sign a ``VendorStatement`` over a new identity key and returns the
``pkcs11-vendor`` proof object the backend verifies.

What the statement vouches for: the chip id, the identity key's public half, and the identity
key's attributes as the token reports them (generated on the token, sensitive, never
extractable). Simulation caveat: on a real secure element the attestation key is usable only
by the chip's own attest command, so the chip alone decides what it signs; in SoftHSM2 it is
an ordinary signing key behind the user PIN, so the simulator shows the protocol, not the
hardware guarantee.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, ObjectClass

from birthright.errors import DeviceError
from birthright.genuine.pkcs11_vendor import KIND
from birthright.genuine.statement import VendorStatement, signed_bytes
from birthright.se._p11 import (
    cert_template,
    find_one,
    generate_p256,
    guard,
    key_template,
    public_key_of,
    sign_digest,
)
from birthright.se.vendor import SimulatedVendor

ATTESTATION_LABEL = "attestation"
ATTESTATION_CERT_LABEL = "attestation-cert"
ATTESTATION_CHAIN_PREFIX = "attestation-chain-"


def install_vendor_attestation(
    session: pkcs11.Session, *, chip_id: str, vendor: SimulatedVendor, now: datetime | None = None
) -> x509.Certificate:
    """Play the chip maker: generate the attestation key on the token and store the vendor's
    certificate for it. Replaces an earlier attestation key."""
    with guard("generating the attestation key"):
        for obj in list(session.get_objects({Attribute.LABEL: ATTESTATION_LABEL})):
            obj.destroy()
        for _index, obj in _chain_objects(session):
            obj.destroy()
        private = generate_p256(session, ATTESTATION_LABEL, derive=False)
        key_id = bytes(private[Attribute.ID])
        public = find_one(session, key_template(ATTESTATION_LABEL, ObjectClass.PUBLIC_KEY))
        if public is None:
            raise DeviceError("the token lost the attestation key it just generated")
        public_key = public_key_of(public)
    cert = vendor.issue_attestation_cert(public_key, chip_id=chip_id, now=now or datetime.now(UTC))
    with guard("storing the attestation certificate"):
        session.create_object(cert_template(cert, ATTESTATION_CERT_LABEL, key_id))
    return cert


def vendor_proof(
    session: pkcs11.Session,
    *,
    chip_id: str,
    identity_public_key: ec.EllipticCurvePublicKey,
    identity_flags: Mapping[str, bool],
) -> dict[str, Any] | None:
    """The ``pkcs11-vendor`` proof over the identity key, or None when the chip has no
    vendor attestation (a part without it cannot prove it is genuine)."""
    with guard("reading the vendor attestation"):
        private = find_one(session, key_template(ATTESTATION_LABEL, ObjectClass.PRIVATE_KEY))
        ders = [bytes(obj[Attribute.VALUE]) for _index, obj in _chain_objects(session)]
    if private is None or not ders:
        return None
    try:
        chain = [x509.load_der_x509_certificate(der) for der in ders]
    except ValueError as e:
        raise DeviceError("the token holds a malformed attestation certificate") from e
    spki = identity_public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    statement = VendorStatement(
        chip_id=chip_id,
        identity_spki_sha256=hashlib.sha256(spki).hexdigest(),
        key_flags={name.lower(): value for name, value in identity_flags.items()},
    ).encode()
    signature = sign_digest(private, hashlib.sha256(signed_bytes(statement)).digest())
    return {
        "kind": KIND,
        "statement": base64.b64encode(statement).decode(),
        "signature": base64.b64encode(signature).decode(),
        "chain": [c.public_bytes(Encoding.PEM).decode() for c in chain],
    }


def _chain_objects(session: pkcs11.Session) -> list[tuple[int, Any]]:
    found = []
    for obj in list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
        label = str(obj[Attribute.LABEL])
        suffix = label.removeprefix(ATTESTATION_CHAIN_PREFIX)
        if label == ATTESTATION_CERT_LABEL:
            found.append((0, obj))
        elif suffix != label and suffix.isdigit():
            found.append((int(suffix), obj))
    return sorted(found, key=lambda pair: pair[0])
