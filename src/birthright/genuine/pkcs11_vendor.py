"""Verifier for ``pkcs11-vendor`` proofs: a chip vendor's attestation chain over a new key.

Proof object (JSON)::

    {"kind": "pkcs11-vendor",
     "statement": base64(VendorStatement JSON),
     "signature": base64(DER ECDSA-SHA256 by the chip's attestation key over
                         SIGNING_CONTEXT + statement),
     "chain": [PEM attestation certificate, PEM vendor intermediates...]}

Checks, in order: shape and sizes; the attestation certificate chains to a trusted SE vendor
root at ``now`` (RFC 5280 path validation by ``cryptography``; the leaf must not be a CA and
must allow digitalSignature); its subject serialNumber is this chip's id; the signature
verifies under its key; the statement names this chip and THIS CSR's public key, and reports
the identity key as generated on chip, sensitive and never extractable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from birthright.genuine.model import (
    ProvenKey,
    SeNotGenuine,
    SeProofIndeterminate,
    SeProofMalformed,
)
from birthright.genuine.statement import (
    MAX_STATEMENT_BYTES,
    StatementError,
    VendorStatement,
    signed_bytes,
)
from birthright.types import ChipId

KIND = "pkcs11-vendor"
MAX_CHAIN = 3
MAX_CERT_PEM = 8192
MAX_SIGNATURE_BYTES = 160
_FIELDS = {"kind", "statement", "signature", "chain"}
#: Attestation certificate → (vendor intermediate) → vendor root.
MAX_CHAIN_DEPTH = 2


class Pkcs11VendorVerifier:
    """Trusts the SE vendor roots it is given (``ca/se-vendors/*.pem`` in a workspace)."""

    kind = KIND

    def __init__(self, *, roots: Sequence[x509.Certificate]) -> None:
        self._roots = list(roots)

    def verify(
        self,
        proof: Mapping[str, Any],
        *,
        public_key: ec.EllipticCurvePublicKey,
        chip_id: ChipId,
        product: str,
        now: datetime,
    ) -> ProvenKey:
        statement_bytes, signature, chain = parse_proof(proof)
        leaf = chain[0]
        self._check_chain(leaf, chain[1:], now)
        holder = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
        if holder != [chip_id]:
            raise SeNotGenuine(
                f"the vendor attestation certificate belongs to chip {_names(holder)}, "
                f"not to chip {chip_id}"
            )
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SeNotGenuine("the vendor attestation key is not an EC key")
        try:
            key.verify(signature, signed_bytes(statement_bytes), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as e:
            raise SeNotGenuine(
                "the vendor statement's signature does not verify under the chip's "
                "attestation certificate (tampered statement or another chip's signature)"
            ) from e
        try:
            statement = VendorStatement.decode(statement_bytes)
        except StatementError as e:
            raise SeNotGenuine(f"the signed vendor statement is not valid: {e}") from e
        if statement.chip_id != chip_id:
            raise SeNotGenuine(
                f"the vendor statement is for chip {statement.chip_id}, not chip {chip_id}"
            )
        spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if statement.identity_spki_sha256 != hashlib.sha256(spki).hexdigest():
            raise SeNotGenuine(
                "the vendor statement vouches for another public key than this CSR's"
            )
        weak = statement.weak_flags()
        if weak:
            raise SeNotGenuine(
                "the chip reports the identity key as not protected: " + ", ".join(weak)
            )
        return ProvenKey(
            kind=KIND,
            detail={
                "vendor": leaf.issuer.rfc4514_string()[:200],
                "attestation_cert_sha256": leaf.fingerprint(hashes.SHA256()).hex(),
            },
        )

    def _check_chain(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime
    ) -> None:
        if not self._roots:
            raise SeProofIndeterminate(
                "no SE vendor root is trusted by this backend "
                "(add one with `birthright ca trust-se-vendor`)"
            )
        ee_policy = ExtensionPolicy.permit_all().require_present(
            x509.KeyUsage, Criticality.AGNOSTIC, _signing_key_usage
        )
        verifier = (
            PolicyBuilder()
            .store(Store(self._roots))
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, list(intermediates))
        except (VerificationError, ValueError) as e:
            raise SeNotGenuine(
                f"the chip's attestation certificate does not chain to a trusted SE vendor "
                f"root: {e}"
            ) from e


def _signing_key_usage(_policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not usage.digital_signature or usage.key_cert_sign:
        raise ValueError("an attestation certificate must be a digitalSignature end entity")


def _names(values: list[str | bytes]) -> str:
    """Names from an untrusted certificate, shortened for messages and audit records."""
    shown = [(v if isinstance(v, str) else v.hex())[:64] for v in values[:3]]
    return ", ".join(shown) or "(none named)"


def parse_proof(proof: Mapping[str, Any]) -> tuple[bytes, bytes, list[x509.Certificate]]:
    """Untrusted proof object → (statement bytes, signature, certificates); shape only."""
    if not isinstance(proof, Mapping) or set(proof) != _FIELDS:
        raise SeProofMalformed(f"a {KIND} proof holds exactly {sorted(_FIELDS)}")
    statement = _b64(proof["statement"], "statement", MAX_STATEMENT_BYTES)
    signature = _b64(proof["signature"], "signature", MAX_SIGNATURE_BYTES)
    pems = proof["chain"]
    if not isinstance(pems, list) or not 1 <= len(pems) <= MAX_CHAIN:
        raise SeProofMalformed(f"se_proof.chain must list 1 to {MAX_CHAIN} PEM certificates")
    chain = []
    for pem in pems:
        if not isinstance(pem, str) or len(pem) > MAX_CERT_PEM:
            raise SeProofMalformed(f"each certificate in se_proof.chain is PEM ≤ {MAX_CERT_PEM}")
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
            cert.subject  # noqa: B018 - parse the lazily decoded parts here
            cert.issuer  # noqa: B018
            cert.extensions  # noqa: B018
        except (
            ValueError,
            TypeError,
            UnicodeEncodeError,
            x509.InvalidVersion,
            x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType,
        ) as e:
            raise SeProofMalformed("se_proof.chain holds a malformed certificate") from e
        chain.append(cert)
    return statement, signature, chain


def _b64(value: object, name: str, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > (limit * 4) // 3 + 4:
        raise SeProofMalformed(f"se_proof.{name} must be base64 of at most {limit} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SeProofMalformed(f"se_proof.{name} is not valid base64") from e
    if not raw:
        raise SeProofMalformed(f"se_proof.{name} is empty")
    return raw
