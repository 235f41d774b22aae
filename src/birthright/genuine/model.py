"""The port every genuine-SE proof kind implements, the registry of kinds, and the policy.

A proof travels as a JSON object with a ``kind`` discriminator. Adding a kind means writing
one ``SeProofVerifier`` and registering it where the backend is wired
(``birthright.server.backend.se_proof_verifiers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import InputError, TrustError
from birthright.types import ChipId

#: certificatePolicies OID meaning "the identity key was proven to live in a genuine SE"
#: (under the project's placeholder private arc, like the hardware type OID).
GENUINE_SE_POLICY_OID = "1.3.6.1.4.1.55555.2.1"

KIND_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class SeNotGenuine(TrustError):
    """The identity key is not proven to live in a genuine secure element."""

    code = "se_not_genuine"


class SeProofIndeterminate(SeNotGenuine):
    """The proof cannot be appraised here: this backend holds no trust anchors for its kind
    (no verifier registered, or no vendor root trusted). Not a forgery verdict: where proof
    is not required the unit enrolls unproven; where it is required, it is refused."""


class SeProofMalformed(InputError):
    """The proof object is not even well-formed (the caller's fault, not a trust verdict)."""

    code = "se_proof_malformed"


@dataclass(frozen=True)
class ProvenKey:
    """What a verified proof established about the identity key."""

    #: The proof kind that verified: ``pkcs11-vendor``, ``tpm``, ...
    kind: str
    #: Certificate policy OIDs this proof entitles the device certificate to.
    policy_oids: tuple[str, ...] = (GENUINE_SE_POLICY_OID,)
    #: Short, non-secret facts for the audit record (vendor, attestation cert fingerprint).
    detail: Mapping[str, str] = field(default_factory=dict)
    #: The chip's attestation key proven to live beside the identity key (a TPM AK's
    #: marshalled TPMT_PUBLIC), kept to check the unit's later firmware quotes.
    attestation_key: bytes | None = None


class SeProofVerifier(Protocol):
    """Checks one kind of proof. Pure: no I/O; roots and settings come in the constructor."""

    @property
    def kind(self) -> str:
        """The ``kind`` value this verifier accepts."""
        ...

    def verify(
        self,
        proof: Mapping[str, Any],
        *,
        public_key: ec.EllipticCurvePublicKey,
        chip_id: ChipId,
        product: str,
        now: datetime,
    ) -> ProvenKey:
        """Return what the proof establishes about ``public_key`` on chip ``chip_id``.

        Raise ``SeProofMalformed`` for a badly shaped proof and ``SeNotGenuine`` (with a
        message naming the failed check) for anything that does not verify.
        """
        ...


class ChallengingSeProofVerifier(SeProofVerifier, Protocol):
    """A proof kind that needs a fresh challenge from the backend first (TPM credential
    activation): the station sends what the chip offers, gets a challenge, and its answer
    is the proof."""

    def challenge(
        self, request: Mapping[str, Any], *, chip_id: ChipId, now: datetime
    ) -> dict[str, Any]: ...


class SeProofVerifiers:
    """The registry of proof kinds this backend verifies."""

    def __init__(self, verifiers: Iterable[SeProofVerifier] = ()) -> None:
        self._by_kind: dict[str, SeProofVerifier] = {}
        for verifier in verifiers:
            if not KIND_PATTERN.match(verifier.kind) or verifier.kind in self._by_kind:
                raise ValueError(f"bad or duplicate SE proof kind {verifier.kind!r}")
            self._by_kind[verifier.kind] = verifier

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_kind))

    def challenge(
        self, request: Mapping[str, Any], *, chip_id: ChipId, now: datetime
    ) -> dict[str, Any]:
        """A fresh challenge for a kind that needs one (``ChallengingSeProofVerifier``)."""
        verifier = self._verifier_for(request)
        if not hasattr(verifier, "challenge"):
            raise SeProofMalformed(f"SE proofs of kind {verifier.kind!r} take no challenge")
        challenging: ChallengingSeProofVerifier = verifier  # type: ignore[assignment]
        return challenging.challenge(request, chip_id=chip_id, now=now)

    def _verifier_for(self, proof: Mapping[str, Any]) -> SeProofVerifier:
        if not isinstance(proof, Mapping):
            raise SeProofMalformed("se_proof must be a JSON object")
        kind = proof.get("kind")
        if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
            raise SeProofMalformed("se_proof.kind must be a short lower-case name")
        verifier = self._by_kind.get(kind)
        if verifier is None:
            known = ", ".join(self.kinds) or "none"
            raise SeProofIndeterminate(
                f"this backend cannot verify SE proofs of kind {kind!r} (it verifies: {known})"
            )
        return verifier

    def verify(
        self,
        proof: Mapping[str, Any],
        *,
        public_key: ec.EllipticCurvePublicKey,
        chip_id: ChipId,
        product: str,
        now: datetime,
    ) -> ProvenKey:
        verifier = self._verifier_for(proof)
        kind = verifier.kind
        proven = verifier.verify(
            proof, public_key=public_key, chip_id=chip_id, product=product, now=now
        )
        if proven.kind != kind:  # a verifier must never vouch under another kind's name
            raise SeNotGenuine(f"the {kind!r} verifier returned a {proven.kind!r} result")
        return proven


@dataclass(frozen=True)
class Appraisal:
    """The outcome of applying a product's policy to an enrollment's proof."""

    proven: ProvenKey | None = None
    #: Why a proof that was sent could not be appraised by this backend (see
    #: ``SeProofIndeterminate``); None when it verified or none was sent.
    unverified: str | None = None

    @property
    def kind(self) -> str | None:
        return self.proven.kind if self.proven else None

    def audit_detail(self) -> dict[str, str]:
        if self.unverified is not None:
            return {"se_proof": "unverified", "se_proof.reason": self.unverified}
        if self.proven is None:
            return {}
        facts = {f"se_proof.{k}": v for k, v in self.proven.detail.items()}
        return {"se_proof": self.proven.kind, **facts}


def appraise(
    verifiers: SeProofVerifiers,
    proof: Mapping[str, Any] | None,
    *,
    required: bool,
    public_key: ec.EllipticCurvePublicKey,
    chip_id: ChipId,
    product: str,
    now: datetime,
) -> Appraisal:
    """Apply a product's policy to an enrollment's (optional) proof.

    Where proof is required, a missing or unverifiable proof is refused. Where it is not, a
    missing proof is fine and a proof this backend has no anchors for is noted, but a proof
    that fails a check is refused: a forged proof is a red flag either way.
    """
    if proof is None:
        if required:
            raise SeNotGenuine(
                f"product {product} requires proof that the identity key lives in a genuine "
                "secure element, and none was sent (a software key, or a part without "
                "vendor attestation)"
            )
        return Appraisal()
    try:
        proven = verifiers.verify(
            proof, public_key=public_key, chip_id=chip_id, product=product, now=now
        )
    except SeProofIndeterminate as e:
        if required:
            raise
        return Appraisal(unverified=e.message)
    return Appraisal(proven=proven)
