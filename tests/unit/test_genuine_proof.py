"""The pkcs11-vendor verifier and the genuine-SE policy, on proofs crafted in software.

A hostile factory crafts its proofs in software too: these are the forgeries it could send.
Proofs from real SoftHSM2 chips are checked in tests/integration/test_genuine_se.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from birthright.errors import InputError, TrustError
from birthright.genuine import (
    SeNotGenuine,
    SeProofIndeterminate,
    SeProofMalformed,
    SeProofVerifiers,
    appraise,
)
from birthright.genuine.pkcs11_vendor import Pkcs11VendorVerifier
from birthright.genuine.statement import REQUIRED_KEY_FLAGS, VendorStatement, signed_bytes
from birthright.se.vendor import SimulatedVendor, load_or_create_vendor
from birthright.types import ChipId

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CHIP = ChipId("CHIP-A")
PRODUCT = "P1"


class Chip:
    """A chip as its vendor made it: an attestation key and the vendor's certificate."""

    def __init__(self, vendor: SimulatedVendor, chip_id: str = CHIP) -> None:
        self.chip_id = chip_id
        self.attestation_key = ec.generate_private_key(ec.SECP256R1())
        self.cert = vendor.issue_attestation_cert(
            self.attestation_key.public_key(), chip_id=chip_id, now=NOW - timedelta(days=1)
        )

    def proof(
        self, identity: ec.EllipticCurvePublicKey, **statement_changes: Any
    ) -> dict[str, Any]:
        spki = identity.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        fields: dict[str, Any] = {
            "chip_id": self.chip_id,
            "identity_spki_sha256": hashlib.sha256(spki).hexdigest(),
            "key_flags": dict(REQUIRED_KEY_FLAGS),
            **statement_changes,
        }
        return sign_proof(self.attestation_key, VendorStatement(**fields).encode(), [self.cert])


def sign_proof(
    key: ec.EllipticCurvePrivateKey, statement: bytes, chain: list[x509.Certificate]
) -> dict[str, Any]:
    signature = key.sign(signed_bytes(statement), ec.ECDSA(hashes.SHA256()))
    return {
        "kind": "pkcs11-vendor",
        "statement": base64.b64encode(statement).decode(),
        "signature": base64.b64encode(signature).decode(),
        "chain": [c.public_bytes(Encoding.PEM).decode() for c in chain],
    }


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> SimulatedVendor:
    return load_or_create_vendor(tmp_path_factory.mktemp("vendor"), now=NOW - timedelta(days=2))


@pytest.fixture(scope="module")
def other_vendor(tmp_path_factory: pytest.TempPathFactory) -> SimulatedVendor:
    return load_or_create_vendor(tmp_path_factory.mktemp("other"), now=NOW - timedelta(days=2))


@pytest.fixture(scope="module")
def verifiers(vendor: SimulatedVendor) -> SeProofVerifiers:
    return SeProofVerifiers([Pkcs11VendorVerifier(roots=[vendor.cert])])


def check(
    verifiers: SeProofVerifiers,
    proof: Any,
    identity: ec.EllipticCurvePublicKey,
    chip_id: str = CHIP,
    *,
    required: bool = True,
    now: datetime = NOW,
) -> str | None:
    appraisal = appraise(
        verifiers,
        proof,
        required=required,
        public_key=identity,
        chip_id=ChipId(chip_id),
        product=PRODUCT,
        now=now,
    )
    return appraisal.kind


def new_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def test_a_genuine_chips_proof_verifies_and_names_its_vendor(
    vendor: SimulatedVendor, verifiers: SeProofVerifiers
) -> None:
    identity = new_key()
    chip = Chip(vendor)
    proven = verifiers.verify(
        chip.proof(identity), public_key=identity, chip_id=CHIP, product=PRODUCT, now=NOW
    )
    assert proven.kind == "pkcs11-vendor"
    assert proven.policy_oids == ("1.3.6.1.4.1.55555.2.1",)
    assert "Simulated SE Vendor" in proven.detail["vendor"]
    assert proven.detail["attestation_cert_sha256"] == chip.cert.fingerprint(hashes.SHA256()).hex()


def _tamper(proof: dict[str, Any]) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(proof["statement"]))
    statement["key"]["extractable"] = True  # any change breaks the signature
    raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return {**proof, "statement": base64.b64encode(raw).decode()}


FORGERIES = {
    # what the forger did → words the refusal must contain
    "vendor_ca_of_its_own": "does not chain to a trusted SE vendor root",
    "statement_tampered": "signature does not verify",
    "proof_for_another_key": "another public key",
    "replayed_for_another_chip": "belongs to chip CHIP-A, not to chip CHIP-B",
    "statement_names_another_chip": "statement is for chip CHIP-Z",
    "extractable_key": "extractable=True",
    "key_not_generated_on_chip": "local=False",
    "attestation_cert_expired": "does not chain",
    "vendor_root_as_leaf": "does not chain",
    "signed_by_another_chips_key": "signature does not verify",
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_proof_is_refused_even_where_proof_is_optional(
    vendor: SimulatedVendor,
    other_vendor: SimulatedVendor,
    verifiers: SeProofVerifiers,
    forgery: str,
) -> None:
    identity = new_key()
    chip = Chip(vendor)
    chip_id: str = CHIP
    now = NOW
    if forgery == "vendor_ca_of_its_own":
        proof = Chip(other_vendor).proof(identity)
    elif forgery == "statement_tampered":
        proof = _tamper(chip.proof(identity))
    elif forgery == "proof_for_another_key":
        proof = chip.proof(new_key())
    elif forgery == "replayed_for_another_chip":
        proof, chip_id = chip.proof(identity), "CHIP-B"
    elif forgery == "statement_names_another_chip":
        proof = chip.proof(identity, chip_id="CHIP-Z")
    elif forgery == "extractable_key":
        proof = chip.proof(identity, key_flags={**REQUIRED_KEY_FLAGS, "extractable": True})
    elif forgery == "key_not_generated_on_chip":
        proof = chip.proof(identity, key_flags={**REQUIRED_KEY_FLAGS, "local": False})
    elif forgery == "attestation_cert_expired":
        proof, now = chip.proof(identity), NOW + timedelta(days=365 * 30)
    elif forgery == "vendor_root_as_leaf":
        statement = json.loads(base64.b64decode(chip.proof(identity)["statement"]))
        raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        proof = sign_proof(vendor.key, raw, [vendor.cert])
    else:
        genuine = chip.proof(identity)
        forged = sign_proof(
            Chip(vendor).attestation_key, base64.b64decode(genuine["statement"]), [chip.cert]
        )
        proof = forged
    for required in (True, False):
        with pytest.raises(SeNotGenuine) as caught:
            check(verifiers, proof, identity, chip_id, required=required, now=now)
        assert not isinstance(caught.value, SeProofIndeterminate)
        assert caught.value.code == "se_not_genuine"
        assert FORGERIES[forgery] in caught.value.message


def test_policy_missing_proof_is_refused_only_where_required(verifiers: SeProofVerifiers) -> None:
    assert check(verifiers, None, new_key(), required=False) is None
    with pytest.raises(SeNotGenuine, match="requires proof"):
        check(verifiers, None, new_key(), required=True)


def test_a_proof_this_backend_has_no_anchors_for_is_indeterminate(
    vendor: SimulatedVendor,
) -> None:
    identity = new_key()
    proof = Chip(vendor).proof(identity)
    for unanchored in (
        SeProofVerifiers([Pkcs11VendorVerifier(roots=[])]),
        SeProofVerifiers(),
    ):
        appraisal = appraise(
            unanchored,
            proof,
            required=False,
            public_key=identity,
            chip_id=CHIP,
            product=PRODUCT,
            now=NOW,
        )
        assert appraisal.kind is None
        assert appraisal.audit_detail()["se_proof"] == "unverified"
        with pytest.raises(SeProofIndeterminate):
            check(unanchored, proof, identity, required=True)
    with pytest.raises(SeProofIndeterminate, match="kind 'tpm'"):
        check(SeProofVerifiers(), {"kind": "tpm"}, identity, required=True)


@pytest.mark.parametrize(
    "proof",
    [
        pytest.param([], id="not_an_object"),
        pytest.param({"kind": 7}, id="kind_not_a_string"),
        pytest.param({"kind": "pkcs11-vendor"}, id="members_missing"),
        pytest.param({"kind": "pkcs11-vendor", "statement": "e30=", "signature": "AA==",
                      "chain": ["x"], "extra": 1}, id="extra_member"),
        pytest.param({"kind": "pkcs11-vendor", "statement": "!!", "signature": "AA==",
                      "chain": ["x"]}, id="bad_base64"),
        pytest.param({"kind": "pkcs11-vendor", "statement": "A" * 5000, "signature": "AA==",
                      "chain": ["x"]}, id="oversized_statement"),
        pytest.param({"kind": "pkcs11-vendor", "statement": "e30=", "signature": "AA==",
                      "chain": []}, id="empty_chain"),
        pytest.param({"kind": "pkcs11-vendor", "statement": "e30=", "signature": "AA==",
                      "chain": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]},
                     id="garbage_certificate"),
    ],
)  # fmt: skip
def test_a_malformed_proof_is_a_clean_input_error(verifiers: SeProofVerifiers, proof: Any) -> None:
    with pytest.raises(SeProofMalformed) as caught:
        check(verifiers, proof, new_key(), required=False)
    assert caught.value.code == "se_proof_malformed"


def test_statement_round_trip_and_strict_decoding() -> None:
    statement = VendorStatement("C1", "ab" * 32, dict(REQUIRED_KEY_FLAGS))
    assert VendorStatement.decode(statement.encode()) == statement
    assert statement.weak_flags() == []
    assert VendorStatement("C1", "ab" * 32, {}).weak_flags() == [
        f"{name}=None" for name in REQUIRED_KEY_FLAGS
    ]


# -- parse or reject cleanly, never crash ---------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
MEMBERS = ("kind", "statement", "signature", "chain")


def _mutate(data: st.DataObject, proof: dict[str, Any]) -> dict[str, Any]:
    member = data.draw(st.sampled_from(MEMBERS))
    how = data.draw(st.sampled_from(("replace", "flip", "drop")))
    mutated = dict(proof)
    if how == "drop":
        del mutated[member]
    elif how == "replace":
        mutated[member] = data.draw(JSON)
    elif member in ("statement", "signature"):
        raw = bytearray(base64.b64decode(proof[member]))
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
        mutated[member] = base64.b64encode(bytes(raw)).decode()
    elif member == "chain":
        pem = proof["chain"][0]
        index = data.draw(st.integers(30, len(pem) - 30))
        mutated["chain"] = [pem[:index] + data.draw(st.sampled_from("A/+=x\n")) + pem[index + 1 :]]
    else:
        mutated["kind"] = data.draw(st.text(max_size=40))
    return mutated


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_or_random_proofs_only_raise_our_errors(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    vendor = _shared_vendor(tmp_path_factory)
    identity = _IDENTITY.public_key()
    verifiers = SeProofVerifiers([Pkcs11VendorVerifier(roots=[vendor.cert])])
    if data.draw(st.booleans()):
        proof: Any = _mutate(data, _shared_proof(vendor))
    else:
        proof = data.draw(JSON | st.dictionaries(st.sampled_from(MEMBERS), JSON))
    required = data.draw(st.booleans())
    with contextlib.suppress(InputError, TrustError):  # anything else fails the test
        check(verifiers, proof, identity, required=required)


_IDENTITY = ec.generate_private_key(ec.SECP256R1())
_CACHE: dict[str, Any] = {}


def _shared_vendor(factory: pytest.TempPathFactory) -> SimulatedVendor:
    if "vendor" not in _CACHE:
        folder: Path = factory.mktemp("hypothesis-vendor")
        _CACHE["vendor"] = load_or_create_vendor(folder, now=NOW - timedelta(days=2))
    vendor: SimulatedVendor = _CACHE["vendor"]
    return vendor


def _shared_proof(vendor: SimulatedVendor) -> dict[str, Any]:
    """One fixed genuine proof (ECDSA signatures vary in length: mutations must not)."""
    if "proof" not in _CACHE:
        _CACHE["proof"] = Chip(vendor).proof(_IDENTITY.public_key())
    proof: dict[str, Any] = _CACHE["proof"]
    return proof
