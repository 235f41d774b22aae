"""Endorsement key certificates: the TPM maker's word that a TPM is genuine.

EK certificates (TCG EK Credential Profile) have an empty subject and a critical
subjectAltName naming the TPM's maker and model, which generic web-PKI path validation
refuses; this checks what matters here directly: each certificate is signed by the next,
inside its validity, and the chain ends at a trusted TPM vendor root.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from birthright.types import ChipId

#: tcg-kp-EKCertificate: an EK certificate's extended key usage.
EK_CERTIFICATE_EKU = x509.ObjectIdentifier("2.23.133.8.1")
MAX_INTERMEDIATES = 2


def chip_id_from_ek(ek_cert: x509.Certificate) -> ChipId:
    """A TPM's chip id: the first 8 bytes of SHA-256 over its EK's SubjectPublicKeyInfo."""
    spki = ek_cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return ChipId(hashlib.sha256(spki).hexdigest()[:16].upper())


def ek_chain_problem(
    ek_cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> str | None:
    """None when ``ek_cert`` chains to one of ``roots`` at ``now``; else what is wrong."""
    if len(intermediates) > MAX_INTERMEDIATES:
        return "the EK certificate chain is too long"
    try:
        usage = ek_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and EK_CERTIFICATE_EKU not in usage:
        return "the certificate is not an EK certificate (no tcg-kp-EKCertificate usage)"
    chain = [ek_cert, *intermediates]
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "a certificate in the EK chain is outside its validity period"
    for child, parent in itertools.pairwise(chain):
        if not _is_ca(parent) or not _signed_by(child, parent):
            return "the EK certificate chain is broken"
    top = chain[-1]
    for root in roots:
        if top.public_bytes(Encoding.DER) == root.public_bytes(Encoding.DER) and len(chain) > 1:
            return None
        if _signed_by(top, root):
            return None
    return "the EK certificate is not issued by a trusted TPM vendor"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
