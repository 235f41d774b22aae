"""Provision one unit: chip id → serial → on-chip key → CSR (+ the chip's genuine-SE proof,
when it offers one) → certificate → stored → proven.

A unit is good only after its secure element has signed a fresh challenge that verifies
against the certificate the backend issued. Every step is safe to repeat: a unit interrupted
anywhere is finished on the next run with the same key and the same serial.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from birthright.errors import BirthrightError, TransientError, TrustError
from birthright.se.base import AnswersSeChallenge, OffersSeProof, SecureElement
from birthright.station.client import BackendClient
from birthright.station.journal import Journal


class ProvisioningFailed(TrustError):
    code = "provisioning_check_failed"


@dataclass
class UnitOutcome:
    label: str
    chip_id: str = ""
    serial: str = ""
    ok: bool = False
    #: "enrolled", "resumed" (finished an interrupted unit), "already" (nothing to do)
    action: str = ""
    code: str = ""
    reason: str = ""
    #: The failure was the backend's or the network's, not the unit's: retry, don't scrap.
    transient: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def build_csr(se: SecureElement, *, serial: str) -> bytes:
    """A PKCS#10 request signed on chip: the proof that the chip holds the key."""
    subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(se.identity_signer(), hashes.SHA256())
    )
    return csr.public_bytes(Encoding.DER)


def prove_possession(se: SecureElement, cert: x509.Certificate) -> None:
    """Have the chip sign a fresh challenge and verify it against ``cert``."""
    challenge = os.urandom(32)
    signature = se.sign(challenge)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProvisioningFailed("the certificate does not hold an EC key")
    try:
        key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise ProvisioningFailed("the chip's signature does not verify against its cert") from e


def check_issued(
    se_key: ec.EllipticCurvePublicKey, cert: x509.Certificate, chain: tuple[x509.Certificate, ...]
) -> None:
    """The backend's answer must certify our chip's key and chain to the issuer it sent."""
    if _spki(cert.public_key()) != _spki(se_key):  # type: ignore[arg-type]
        raise ProvisioningFailed("the issued certificate certifies a different key")
    if not chain:
        raise ProvisioningFailed("the backend sent no CA chain")
    try:
        cert.verify_directly_issued_by(chain[0])
    except (ValueError, TypeError, InvalidSignature) as e:
        raise ProvisioningFailed("the certificate is not signed by the issuing CA sent") from e


class Station:
    def __init__(
        self,
        *,
        station_id: str,
        work_order_id: str,
        backend: BackendClient,
        journal: Journal | None = None,
    ) -> None:
        self.station_id = station_id
        self.work_order_id = work_order_id
        self._backend = backend
        self._journal = journal

    def provision(self, se: SecureElement, *, label: str = "") -> UnitOutcome:
        outcome = UnitOutcome(label=label)
        try:
            self._provision(se, outcome)
        except BirthrightError as e:
            outcome.ok, outcome.code, outcome.reason = False, e.code, e.message
            outcome.transient = isinstance(e, TransientError)
            self._mark(outcome.chip_id, "failed", code=e.code)
        return outcome

    def _mark(self, chip_id: str, step: str, **values: str | None) -> None:
        if self._journal is not None and chip_id:
            self._journal.mark(chip_id, step, **values)

    def _se_challenge(self, se: SecureElement, chip_id: str) -> dict[str, Any] | None:
        """A fresh genuineness challenge for chips that answer one (TPM), asked before a
        serial is reserved: a counterfeit part is turned away without consuming one."""
        if not isinstance(se, AnswersSeChallenge):
            return None
        return self._backend.se_challenge(
            station_id=self.station_id,
            work_order_id=self.work_order_id,
            chip_id=chip_id,
            request=se.se_proof_request(),
        )

    @staticmethod
    def _se_proof(se: SecureElement, challenge: dict[str, Any] | None) -> dict[str, Any] | None:
        """The chip's genuineness proof: answered to the challenge, or offered as is."""
        if challenge is not None and isinstance(se, AnswersSeChallenge):
            return se.answer_se_challenge(challenge)
        return se.se_proof() if isinstance(se, OffersSeProof) else None

    def _provision(self, se: SecureElement, out: UnitOutcome) -> None:
        t = time.perf_counter()
        out.chip_id = se.chip_id
        if self._journal is not None:
            self._journal.begin(out.chip_id, out.label)
        key = se.identity_public_key()
        stored = se.read_chain()
        if key is not None and stored and _spki(stored[0].public_key()) == _spki(key):  # type: ignore[arg-type]
            prove_possession(se, stored[0])
            out.serial = _serial_of(stored[0])
            out.ok, out.action = True, "already"
            self._mark(out.chip_id, "done", serial=out.serial)
            return
        challenge = self._se_challenge(se, out.chip_id)
        out.serial = self._backend.reserve_serial(
            station_id=self.station_id, work_order_id=self.work_order_id, chip_id=out.chip_id
        )
        self._mark(out.chip_id, "reserved", serial=out.serial)
        out.seconds["reserve"] = time.perf_counter() - t

        t = time.perf_counter()
        resumed = key is not None
        if key is None:
            key = se.generate_identity_key()
        self._mark(out.chip_id, "key_generated")
        out.seconds["keygen"] = time.perf_counter() - t

        t = time.perf_counter()
        csr = build_csr(se, serial=out.serial)
        out.seconds["csr"] = time.perf_counter() - t

        t = time.perf_counter()
        proof = self._se_proof(se, challenge)
        out.seconds["se_proof"] = time.perf_counter() - t

        t = time.perf_counter()
        enrolled = self._backend.enroll(
            station_id=self.station_id,
            work_order_id=self.work_order_id,
            serial=out.serial,
            chip_id=out.chip_id,
            csr_der=csr,
            se_proof=proof,
        )
        self._mark(
            out.chip_id, "enrolled", cert_serial=format(enrolled.certificate.serial_number, "x")
        )
        out.seconds["enroll"] = time.perf_counter() - t

        t = time.perf_counter()
        check_issued(key, enrolled.certificate, enrolled.chain)
        se.store_chain([enrolled.certificate, *enrolled.chain])
        if se.read_chain()[:1] != [enrolled.certificate]:
            raise ProvisioningFailed("the certificate read back from the chip differs")
        self._mark(out.chip_id, "stored")
        prove_possession(se, enrolled.certificate)
        out.seconds["store_and_prove"] = time.perf_counter() - t
        out.ok = True
        out.action = "resumed" if resumed or not enrolled.created else "enrolled"
        self._mark(out.chip_id, "done")


def _serial_of(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(attrs[0].value) if attrs else ""
