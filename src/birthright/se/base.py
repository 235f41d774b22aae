"""The interface every secure-element driver implements.

A secure element owns the device identity key. Drivers generate it on chip, hand out only
its public half, sign with it, and keep the device's certificate chain next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.types import ChipId


@runtime_checkable
class SecureElement(Protocol):
    """A device's secure element (PKCS#11 token, TPM 2.0, ...)."""

    @property
    def chip_id(self) -> ChipId:
        """The chip's unique, factory-set identifier."""
        ...

    def generate_identity_key(self) -> ec.EllipticCurvePublicKey:
        """Generate the EC P-256 identity key on chip, non-exportable; return its public half.

        Replaces any previous identity key (a re-provisioned unit gets a fresh key).
        """
        ...

    def identity_public_key(self) -> ec.EllipticCurvePublicKey | None:
        """The identity key's public half, or None when no identity key exists yet."""
        ...

    def identity_signer(self) -> ec.EllipticCurvePrivateKey:
        """A handle usable by ``cryptography`` builders; signing happens on chip."""
        ...

    def sign(self, data: bytes) -> bytes:
        """ECDSA-SHA256 over ``data`` with the identity key; DER-encoded signature."""
        ...

    def store_chain(self, chain: Sequence[x509.Certificate]) -> None:
        """Write the device certificate followed by its CA chain into the chip."""
        ...

    def read_chain(self) -> list[x509.Certificate]:
        """The stored chain, device certificate first; empty when none is stored."""
        ...


@runtime_checkable
class OffersSeProof(Protocol):
    """A secure element that can prove its identity key lives in a genuine chip."""

    def se_proof(self) -> dict[str, Any] | None:
        """The proof object sent with enrollment (``{"kind": ..., ...}``) over the current
        identity key, or None when this part has no means to prove it is genuine."""
        ...


@runtime_checkable
class AnswersSeChallenge(Protocol):
    """A secure element whose genuineness proof answers a fresh backend challenge (a TPM:
    EK certificate and attestation key out, credential activation and certify back)."""

    def se_proof_request(self) -> dict[str, Any]:
        """What the backend needs to challenge this chip (``{"kind": ..., ...}``)."""
        ...

    def answer_se_challenge(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        """The proof object for the enrollment, answering ``challenge``."""
        ...
