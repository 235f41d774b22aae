"""TPM 2.0 devices on real swtpm instances: the driver, genuineness at enrollment over HTTP,
and firmware quotes in attestation, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.attest.eat import EatClaims, build_eat
from birthright.ca.authority import FactoryCa
from birthright.ca.se_vendors import trust_se_vendor
from birthright.db.audit import list_events
from birthright.db.engine import make_sessionmaker
from birthright.db.products import SqlProductPolicies
from birthright.device.agent import RunningFirmware, boot, device_serial
from birthright.device.agent import attest as agent_attest
from birthright.genuine.tpm import VERIFIED_TPM_FIXED, VERIFIED_TPM_RESIDENCY
from birthright.se.sim import create_devices, list_devices
from birthright.se.swtpm import power_on, tpm_vendor_root_file
from birthright.se.tpm import IDENTITY_HANDLE, TpmSecureElement
from birthright.server.backend import build_backend
from birthright.settings import Settings
from birthright.station.client import BackendClient
from birthright.station.provision import Station
from birthright.tpm.wire import (
    DECRYPT,
    FIXED_PARENT,
    FIXED_TPM,
    RESTRICTED,
    SENSITIVE_DATA_ORIGIN,
    SIGN,
    parse_public,
)
from tests.conftest import ServedBackend, ThreadServer, seed_line
from tests.integration.test_attestation_firmware import release
from tests.integration.test_enrollment_api import counts
from tests.integration.test_genuine_se import assert_refused_and_audited

STATION = "st-tpm"
WO = "WO-TPM"
PRODUCT = "BR-TEST"
_labels = itertools.count(5000, 10)


@pytest.fixture(scope="module")
def tpm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device folder for simulated TPMs (its TPM vendor made on first use)."""
    return tmp_path_factory.mktemp("tpms")


def make_tpms(folder: Path, n: int = 1, *, genuine: bool = True) -> list[str]:
    made = create_devices(
        folder, n, pin="unused-for-tpm", kind="tpm", vendor_attestation=genuine,
        start_index=next(_labels),
    )  # fmt: skip
    return [d.label for d in made]


# -- the driver ---------------------------------------------------------------------------


def test_the_identity_key_is_born_fixed_in_the_tpm_and_signs_there(tpm_dir: Path) -> None:
    [label] = make_tpms(tpm_dir)
    with power_on(tpm_dir, label) as se:
        assert se.identity_public_key() is None
        public = se.generate_identity_key()
        area = se._public_area(IDENTITY_HANDLE)
        assert area is not None
        key = parse_public(area)
        assert key.has(SIGN, FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN)
        assert not key.has(DECRYPT) and not key.has(RESTRICTED)
        signature = se.sign(b"a fresh challenge")
        public.verify(signature, b"a fresh challenge", ec.ECDSA(hashes.SHA256()))
        with pytest.raises(Exception, match="cannot be exported"):
            se.identity_signer().private_numbers()
    with power_on(tpm_dir, label) as se:  # persistent across power cycles
        assert se.identity_public_key() == public


def test_a_new_identity_key_replaces_the_old_one(tpm_dir: Path) -> None:
    [label] = make_tpms(tpm_dir)
    with power_on(tpm_dir, label) as se:
        first = se.generate_identity_key()
        second = se.generate_identity_key()
        assert first != second and se.identity_public_key() == second


def test_the_chip_id_is_the_eks_and_the_chain_survives_a_power_cycle(
    tpm_dir: Path, factory_ca: FactoryCa
) -> None:
    [label] = make_tpms(tpm_dir)
    [recorded] = [d for d in list_devices(tpm_dir) if d.label == label]
    chain = list(factory_ca.chain())
    with power_on(tpm_dir, label) as se:
        assert se.chip_id == recorded.chip_id and len(se.chip_id) == 16
        assert se.read_chain() == []
        se.store_chain(chain)
    with power_on(tpm_dir, label) as se:
        assert se.read_chain() == chain
        se.store_chain(chain[:1])  # storing again replaces, it does not append
        assert se.read_chain() == chain[:1]


def test_the_firmware_pcr_starts_from_reset_at_each_power_on(tpm_dir: Path) -> None:
    [label] = make_tpms(tpm_dir)
    firmware = RunningFirmware("1.0.0", hashlib.sha256(b"image").digest())
    with power_on(tpm_dir, label) as se:
        assert se.firmware_pcr() == bytes(32)
        boot(se, firmware)
        measured = se.firmware_pcr()
        assert measured == hashlib.sha256(bytes(32) + firmware.sha256).digest()
        boot(se, firmware)  # a second call in the same power cycle measures nothing
        assert se.firmware_pcr() == measured
    with power_on(tpm_dir, label) as se:
        assert se.firmware_pcr() == bytes(32)


# -- enrollment with genuineness proof, over HTTP --------------------------------------------


@pytest.fixture
def served(settings: Settings, factory_ca: FactoryCa, tpm_dir: Path) -> Iterator[ServedBackend]:
    """The service, trusting the simulated TPM vendor of ``tpm_dir``."""
    make_tpms(tpm_dir)  # makes the vendor, if this is the first TPM of the folder
    trust_se_vendor(settings.ws, tpm_vendor_root_file(tpm_dir).read_bytes())
    backend = build_backend(settings, ca=factory_ca)
    server = ThreadServer(backend, settings.port)
    server.start()
    try:
        service = ServedBackend(backend, f"http://127.0.0.1:{settings.port}")
        seed_line(service, station_id=STATION, work_order_id=WO)
        SqlProductPolicies(make_sessionmaker(backend.engine)).set_require_genuine_se(
            PRODUCT, True, now=datetime.now(UTC)
        )
        yield service
    finally:
        server.stop()
        backend.close()


@pytest.fixture
def backend(served: ServedBackend) -> Iterator[BackendClient]:
    with BackendClient(served.url) as client:
        yield client


def provision(tpm_dir: Path, backend: BackendClient, label: str) -> Any:
    with power_on(tpm_dir, label) as se:
        return Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=label
        )


def test_a_genuine_tpm_enrolls_with_the_tcg_residency_policies(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path, factory_ca: FactoryCa
) -> None:
    [label] = make_tpms(tpm_dir)
    outcome = provision(tpm_dir, backend, label)
    assert outcome.ok, outcome.reason
    device = httpx.get(f"{served.url}/v1/devices/{outcome.serial}", headers=served.auth).json()
    assert device["se_proof"] == "tpm"
    with power_on(tpm_dir, label) as se:
        cert, *chain = se.read_chain()
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    oids = {p.policy_identifier.dotted_string for p in policies}
    assert {VERIFIED_TPM_RESIDENCY, VERIFIED_TPM_FIXED} <= oids
    factory_ca.verify_chain(cert, chain[:1], datetime.now(UTC))
    [audited] = list_events(make_sessionmaker(served.backend.engine), event="enrollment", limit=1)
    assert json.loads(audited.detail)["se_proof"] == "tpm"


def test_a_tpm_from_an_untrusted_maker_is_refused_se_not_genuine(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path
) -> None:
    [label] = make_tpms(tpm_dir, genuine=False)
    before = counts(served)
    outcome = provision(tpm_dir, backend, label)
    assert not outcome.ok and outcome.code == "se_not_genuine", outcome
    assert "trusted TPM vendor" in outcome.reason
    # refused at the challenge, before any serial was reserved
    assert_refused_and_audited(served, before)


def _challenge(backend: BackendClient, se: TpmSecureElement, chip_id: str | None = None) -> Any:
    return backend.se_challenge(
        station_id=STATION,
        work_order_id=WO,
        chip_id=chip_id or se.chip_id,
        request=se.se_proof_request(),
    )


def _enroll_with(
    served: ServedBackend, backend: BackendClient, se: TpmSecureElement, proof: dict[str, Any]
) -> httpx.Response:
    from birthright.station.provision import build_csr

    serial = backend.reserve_serial(station_id=STATION, work_order_id=WO, chip_id=se.chip_id)
    if se.identity_public_key() is None:
        se.generate_identity_key()
    body = {
        "station_id": STATION,
        "work_order_id": WO,
        "serial": serial,
        "chip_id": se.chip_id,
        "csr": base64.b64encode(build_csr(se, serial=serial)).decode(),
        "se_proof": proof,
    }
    return httpx.post(f"{served.url}/v1/enrollments", json=body)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda p, o: p | {"token": o["token"]}, "another chip"),
        (lambda p, o: p | {"identity_public": o["identity_public"]}, "not the key in this CSR"),
        (lambda p, o: p | {"certify_info": o["certify_info"]}, "certify statement"),
        (lambda p, o: p | {"token": p["token"][:-8] + "AAAAAAA="}, "not one this backend made"),
    ],
    ids=["token-of-another-chip", "other-identity-key", "other-certify", "forged-token"],
)
def test_a_forged_or_borrowed_tpm_proof_is_refused(
    served: ServedBackend,
    backend: BackendClient,
    tpm_dir: Path,
    tamper: Any,
    reason: str,
) -> None:
    mine, other = make_tpms(tpm_dir, 2)
    with power_on(tpm_dir, other) as se:  # a genuine proof of another chip
        se.generate_identity_key()
        borrowed = se.answer_se_challenge(_challenge(backend, se))
    with power_on(tpm_dir, mine) as se:
        se.generate_identity_key()
        proof = se.answer_se_challenge(_challenge(backend, se))
        before = counts(served)
        r = _enroll_with(served, backend, se, tamper(proof, borrowed))
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "se_not_genuine"
    assert reason in r.json()["message"]
    assert_refused_and_audited(served, before, reserved=1)


def test_a_challenge_for_another_chips_id_is_refused(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path
) -> None:
    [label] = make_tpms(tpm_dir)
    with power_on(tpm_dir, label) as se:
        r = httpx.post(
            f"{served.url}/v1/se-challenges",
            json={
                "station_id": STATION,
                "work_order_id": WO,
                "chip_id": "0011223344556677",
                "request": se.se_proof_request(),
            },
        )
    assert r.status_code == 403 and r.json()["code"] == "se_not_genuine", r.text


def test_a_malformed_challenge_request_is_a_clear_400(
    served: ServedBackend, backend: BackendClient
) -> None:
    r = httpx.post(
        f"{served.url}/v1/se-challenges",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "chip_id": "0011223344556677",
            "request": {"kind": "tpm", "ek_cert": "!!", "ak_public": "AAAA"},
        },
    )
    assert r.status_code == 400 and r.json()["code"] == "se_proof_malformed", r.text


# -- firmware quotes in attestation ----------------------------------------------------------


def _attest(tpm_dir: Path, backend: BackendClient, label: str, fw: RunningFirmware) -> Any:
    """Power the unit on (its boot measures ``fw``) and attest."""
    with power_on(tpm_dir, label) as se:
        return agent_attest(se, backend, now=datetime.now(UTC), firmware=fw)


def _ids(result: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["id"] for c in result["checks"]}


def test_a_tpm_unit_proves_its_firmware_with_a_quote(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = release(settings, tmp_path, "2.0.0", b"tpm firmware two").read_bytes()
    [label] = make_tpms(tpm_dir)
    assert provision(tpm_dir, backend, label).ok
    result = _attest(
        tpm_dir, backend, label, RunningFirmware("2.0.0", hashlib.sha256(image).digest())
    )
    assert result["status"] == "affirming", result
    assert _ids(result)["quote"] == "quote.valid"


def test_a_tpm_unit_that_booted_other_firmware_cannot_claim_the_allowed_one(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    allowed = release(settings, tmp_path, "2.1.0", b"allowed image")
    [label] = make_tpms(tpm_dir)
    assert provision(tpm_dir, backend, label).ok
    claimed = RunningFirmware.from_image(allowed, "2.1.0")
    with power_on(tpm_dir, label) as se:
        boot(se, RunningFirmware("2.1.0", hashlib.sha256(b"a patched image").digest()))
        result = agent_attest(se, backend, now=datetime.now(UTC), firmware=claimed)
    assert result["status"] == "contraindicated"
    assert _ids(result)["quote"] == "quote.pcr_mismatch"
    assert "firmware.allowed" in {c["id"] for c in result["checks"]}  # the claim alone passes


def test_evidence_without_the_quote_from_a_tpm_unit_fails(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = release(settings, tmp_path, "2.2.0", b"image 2.2").read_bytes()
    [label] = make_tpms(tpm_dir)
    assert provision(tpm_dir, backend, label).ok
    with power_on(tpm_dir, label) as se:
        serial = device_serial(se)
        claims = EatClaims(
            nonce=backend.challenge(serial),
            serial=serial,
            firmware_version="2.2.0",
            firmware_sha256=hashlib.sha256(image).digest(),
            issued_at=datetime.now(UTC),
        )
        chain = [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]
        result = backend.attest(evidence=build_eat(claims, se.sign), chain_pem=chain)
    assert _ids(result)["quote"] == "quote.missing"
    assert result["status"] == "contraindicated"


def test_a_quote_made_for_another_nonce_is_refused(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = release(settings, tmp_path, "2.3.0", b"image 2.3").read_bytes()
    fw = RunningFirmware("2.3.0", hashlib.sha256(image).digest())
    [label] = make_tpms(tpm_dir)
    assert provision(tpm_dir, backend, label).ok
    with power_on(tpm_dir, label) as se:
        serial = device_serial(se)
        boot(se, fw)
        stale = se.quote("an-earlier-nonce")
        nonce = backend.challenge(serial)
        claims = EatClaims(
            nonce=nonce, serial=serial, firmware_version="2.3.0", firmware_sha256=fw.sha256,
            issued_at=datetime.now(UTC), tpm_quote=stale,
        )  # fmt: skip
        chain = [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]
        result = backend.attest(evidence=build_eat(claims, se.sign), chain_pem=chain)
    assert _ids(result)["quote"] == "quote.nonce_mismatch"
