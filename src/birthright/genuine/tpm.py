"""Verifier for ``tpm`` proofs: EK certificate, credential activation, TPM2_Certify.

Two round trips, no server state:

1. ``challenge(request)`` — the station sends the TPM's EK certificate and the public area
   of its attestation key (AK). The backend checks the EK certificate against the trusted
   vendor roots, checks the AK is a restricted, fixedTPM signing key, and makes a credential
   (TPM2_MakeCredential, in Python) that only the TPM holding that EK can open, and only for
   an object with that AK's name. The secret travels back inside a sealed token (AES-GCM
   under a backend key) with the chip id, AK name, EK digest and an expiry.
2. ``verify(proof)`` — the TPM opened the credential (TPM2_ActivateCredential) and had the
   AK certify the identity key (TPM2_Certify) with a digest of the secret as qualifying data.
   The backend opens its token, checks the certify statement's signature under the AK, its
   qualifying data, and that the certified name is the name of a fixedTPM, sensitive-origin
   signing key whose point is the CSR's public key.

Verified, the certificate gets the TCG policy OIDs tcg-cap-verifiedTPMResidency and
tcg-cap-verifiedTPMFixed, and the AK is kept to check the unit's firmware quotes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from birthright.genuine.model import (
    GENUINE_SE_POLICY_OID,
    ProvenKey,
    SeNotGenuine,
    SeProofIndeterminate,
    SeProofMalformed,
)
from birthright.tpm.ek import chip_id_from_ek, ek_chain_problem
from birthright.tpm.quote import check_certify
from birthright.tpm.wire import (
    DECRYPT,
    FIXED_PARENT,
    FIXED_TPM,
    RESTRICTED,
    SENSITIVE_DATA_ORIGIN,
    SIGN,
    EccPublic,
    TpmStructureError,
    parse_public,
)
from birthright.types import ChipId

KIND = "tpm"
VERIFIED_TPM_RESIDENCY = "2.23.133.11.1.1"
VERIFIED_TPM_FIXED = "2.23.133.11.1.2"
CHALLENGE_TTL = timedelta(minutes=5)
MAX_FIELD = 4096
_TOKEN_AAD = b"birthright tpm credential challenge v1"
_REQUEST_FIELDS = {"kind", "ek_cert", "ak_public"}
_PROOF_FIELDS = {
    "kind",
    "token",
    "ak_public",
    "identity_public",
    "certify_info",
    "certify_signature",
}


def _field(obj: Mapping[str, Any], name: str) -> bytes:
    value = obj.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD:
        raise SeProofMalformed(f"se_proof.{name} must be base64 text of at most {MAX_FIELD}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise SeProofMalformed(f"se_proof.{name} is not valid base64") from e


def _shape(obj: Mapping[str, Any], fields: set[str]) -> None:
    if not isinstance(obj, Mapping) or set(obj) != fields:
        raise SeProofMalformed(f"a tpm proof holds exactly: {', '.join(sorted(fields))}")


def _public(data: bytes, what: str) -> EccPublic:
    try:
        return parse_public(data)
    except TpmStructureError as e:
        raise SeProofMalformed(f"the {what}: {e.message}") from e


@dataclass(frozen=True)
class _Sealed:
    chip_id: str
    ak_name: bytes
    secret: bytes
    expires: int
    vendor_verified: bool


class TpmProofVerifier:
    """Trusts the TPM vendor roots it is given; seals challenges under ``seal_key``."""

    kind = KIND

    def __init__(self, *, roots: Sequence[x509.Certificate], seal_key: bytes) -> None:
        self._roots = list(roots)
        self._aead = AESGCM(hashlib.sha256(b"tpm-challenge\0" + seal_key).digest())

    # -- round 1 ---------------------------------------------------------------------------

    def challenge(
        self, request: Mapping[str, Any], *, chip_id: ChipId, now: datetime
    ) -> dict[str, Any]:
        """A credential challenge for the TPM described by ``request``."""
        _shape(request, _REQUEST_FIELDS)
        try:
            ek_cert = x509.load_der_x509_certificate(_field(request, "ek_cert"))
        except ValueError as e:
            raise SeProofMalformed("se_proof.ek_cert is not a DER certificate") from e
        ak = _public(_field(request, "ak_public"), "attestation key")
        if chip_id_from_ek(ek_cert) != chip_id:
            raise SeNotGenuine(f"the EK certificate does not belong to chip {chip_id}")
        if not ak.has(RESTRICTED, SIGN, FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN) or ak.has(
            DECRYPT
        ):
            raise SeNotGenuine("the attestation key is not a restricted, fixedTPM signing key")
        vendor_verified = False
        if self._roots:
            problem = ek_chain_problem(ek_cert, (), self._roots, now)
            if problem is not None:
                raise SeNotGenuine(problem)
            vendor_verified = True
        secret = os.urandom(32)
        blob, encrypted = _make_credential(ek_cert, secret, ak.name)
        sealed = _Sealed(
            chip_id, ak.name, secret, int((now + CHALLENGE_TTL).timestamp()), vendor_verified
        )
        return {
            "kind": KIND,
            "credential_blob": base64.b64encode(blob).decode(),
            "encrypted_secret": base64.b64encode(encrypted).decode(),
            "token": self._seal(sealed),
            "expires_at": (now + CHALLENGE_TTL).isoformat(),
        }

    # -- round 2 ---------------------------------------------------------------------------

    def verify(
        self,
        proof: Mapping[str, Any],
        *,
        public_key: ec.EllipticCurvePublicKey,
        chip_id: ChipId,
        product: str,
        now: datetime,
    ) -> ProvenKey:
        _shape(proof, _PROOF_FIELDS)
        token = proof.get("token")
        if not isinstance(token, str) or len(token) > MAX_FIELD:
            raise SeProofMalformed("se_proof.token must be the challenge's token")
        ak_area = _field(proof, "ak_public")
        ak = _public(ak_area, "attestation key")
        identity = _public(_field(proof, "identity_public"), "identity key")
        attest = _field(proof, "certify_info")
        signature = _field(proof, "certify_signature")
        sealed = self._open(token)
        if sealed.expires < now.timestamp():
            raise SeNotGenuine("the TPM credential challenge expired; ask for a new one")
        if sealed.chip_id != chip_id:
            raise SeNotGenuine("the TPM credential challenge was made for another chip")
        if sealed.ak_name != ak.name:
            raise SeNotGenuine("the attestation key is not the one the challenge was made for")
        if _spki(identity.public_key) != _spki(public_key):
            raise SeNotGenuine("the certified TPM key is not the key in this CSR")
        if not identity.has(SIGN, FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN) or identity.has(
            DECRYPT
        ):
            raise SeNotGenuine("the identity key is not a fixedTPM, TPM-generated signing key")
        problem = check_certify(
            attest=attest, signature=signature, ak=ak, certified=identity, secret=sealed.secret
        )
        if problem is not None:
            raise SeNotGenuine(problem)
        if not sealed.vendor_verified:
            raise SeProofIndeterminate("this backend trusts no TPM vendor root")
        return ProvenKey(
            kind=KIND,
            policy_oids=(VERIFIED_TPM_RESIDENCY, VERIFIED_TPM_FIXED, GENUINE_SE_POLICY_OID),
            detail={"ak_name": ak.name.hex()},
            attestation_key=ak_area,
        )

    # -- the sealed token --------------------------------------------------------------------

    def _seal(self, sealed: _Sealed) -> str:
        body = json.dumps(
            {
                "chip": sealed.chip_id,
                "ak": sealed.ak_name.hex(),
                "secret": sealed.secret.hex(),
                "exp": sealed.expires,
                "vendor": sealed.vendor_verified,
            }
        ).encode()
        nonce = os.urandom(12)
        return base64.urlsafe_b64encode(
            nonce + self._aead.encrypt(nonce, body, _TOKEN_AAD)
        ).decode()

    def _open(self, token: str) -> _Sealed:
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            body = json.loads(self._aead.decrypt(raw[:12], raw[12:], _TOKEN_AAD))
            return _Sealed(
                str(body["chip"]),
                bytes.fromhex(body["ak"]),
                bytes.fromhex(body["secret"]),
                int(body["exp"]),
                bool(body["vendor"]),
            )
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error) as e:
            raise SeNotGenuine(
                "the TPM credential challenge token is not one this backend made"
            ) from e


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _make_credential(
    ek_cert: x509.Certificate, secret: bytes, ak_name: bytes
) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential for the EK in ``ek_cert`` (TCG template H-3, ECC P-384)."""
    from tpm2_pytss import TPM2B_NAME
    from tpm2_pytss.utils import NoSuchIndex, create_ek_template, make_credential

    key = ek_cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise SeNotGenuine("the EK certificate does not hold an ECC P-384 endorsement key")

    def no_nv(index: int) -> bytes:
        if index == 0x01C00016:
            return ek_cert.public_bytes(Encoding.DER)
        raise NoSuchIndex(index)

    _, template = create_ek_template("EK-HIGH-ECC384", no_nv)
    numbers = key.public_numbers()
    template.publicArea.unique.ecc.x = numbers.x.to_bytes(48, "big")
    template.publicArea.unique.ecc.y = numbers.y.to_bytes(48, "big")
    blob, encrypted = make_credential(template, secret, TPM2B_NAME(ak_name))
    return bytes(blob.marshal()), bytes(encrypted.marshal())
