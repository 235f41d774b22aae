"""Genuine-chip proof at enrollment: real SoftHSM2 chips with vendor attestation, the real
service over HTTP on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.ca.authority import FactoryCa
from birthright.ca.se_vendors import trust_se_vendor
from birthright.db.audit import list_events
from birthright.db.engine import make_sessionmaker
from birthright.db.products import SqlProductPolicies
from birthright.enrollment.service import SECURITY_EVENTS
from birthright.genuine import GENUINE_SE_POLICY_OID
from birthright.se.attestation import install_vendor_attestation
from birthright.se.pkcs11 import Pkcs11SecureElement, token_session, write_chip_id
from birthright.se.sim import DeviceSet, create_devices
from birthright.se.vendor import load_or_create_vendor, vendor_root_file
from birthright.server.backend import build_backend
from birthright.settings import Settings
from birthright.station.client import BackendClient, BackendUntrusting
from birthright.station.provision import Station, build_csr
from tests.conftest import ServedBackend, ThreadServer, seed_line
from tests.integration.conftest import TokenFactory
from tests.integration.test_enrollment_api import counts, csr_b64

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

STATION = "st-genuine"
WO = "WO-GENUINE"
PRODUCT = "BR-TEST"  # the product seed_line opens work orders for
_labels = itertools.count(3000, 10)


@pytest.fixture
def served(
    settings: Settings, factory_ca: FactoryCa, sim_device_set: DeviceSet
) -> Iterator[ServedBackend]:
    """The service, trusting the simulated chip vendor of this process's device folder."""
    load_or_create_vendor(sim_device_set.directory)
    trust_se_vendor(settings.ws, vendor_root_file(sim_device_set.directory).read_bytes())
    backend = build_backend(settings, ca=factory_ca)
    server = ThreadServer(backend, settings.port)
    server.start()
    try:
        service = ServedBackend(backend, f"http://127.0.0.1:{settings.port}")
        seed_line(service, station_id=STATION, work_order_id=WO)
        yield service
    finally:
        server.stop()
        backend.close()


@pytest.fixture
def backend(served: ServedBackend) -> Iterator[BackendClient]:
    with BackendClient(served.url) as client:
        yield client


def require_genuine(served: ServedBackend, required: bool = True) -> None:
    policies = SqlProductPolicies(make_sessionmaker(served.backend.engine))
    policies.set_require_genuine_se(PRODUCT, required, now=datetime.now(UTC))


def chips(device_set: DeviceSet, n: int, *, attested: bool = True) -> list[str]:
    made = create_devices(
        device_set.directory,
        n,
        pin=device_set.pin,
        start_index=next(_labels),
        vendor_attestation=attested,
    )
    return [d.label for d in made]


def provision(device_set: DeviceSet, backend: BackendClient, label: str) -> tuple[Any, str]:
    with device_set.open(label) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=label
        )
        return outcome, se.chip_id


def test_a_genuine_chip_enrolls_where_proof_is_required_and_the_proof_is_recorded(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet, factory_ca: FactoryCa
) -> None:
    require_genuine(served)
    [label] = chips(sim_device_set, 1)
    outcome, _chip = provision(sim_device_set, backend, label)
    assert outcome.ok, outcome.reason
    device = httpx.get(f"{served.url}/v1/devices/{outcome.serial}", headers=served.auth).json()
    assert device["se_proof"] == "pkcs11-vendor"
    [audited] = list_events(make_sessionmaker(served.backend.engine), event="enrollment", limit=1)
    detail = json.loads(audited.detail)
    assert detail["se_proof"] == "pkcs11-vendor"
    assert "Simulated SE Vendor" in detail["se_proof.vendor"]
    # The certificate tells relying parties the key was proven to live in a genuine SE.
    with sim_device_set.open(label) as se:
        cert, *chain = se.read_chain()
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [GENUINE_SE_POLICY_OID]
    factory_ca.verify_chain(cert, chain[:1], datetime.now(UTC))
    policy = httpx.get(f"{served.url}/v1/products/{PRODUCT}/policy", headers=served.auth).json()
    assert policy["require_genuine_se"] is True


def test_a_counterfeit_chip_without_vendor_attestation_is_refused(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet
) -> None:
    require_genuine(served)
    [label] = chips(sim_device_set, 1, attested=False)
    before = counts(served)
    outcome, _chip = provision(sim_device_set, backend, label)
    assert (outcome.ok, outcome.code) == (False, "se_not_genuine")
    assert "requires proof" in outcome.reason
    assert_refused_and_audited(served, before, reserved=1)


def test_a_software_key_csr_is_refused_where_proof_is_required(
    served: ServedBackend, backend: BackendClient
) -> None:
    require_genuine(served)
    serial = backend.reserve_serial(station_id=STATION, work_order_id=WO, chip_id="SOFT-1")
    before = counts(served)
    r = httpx.post(
        f"{served.url}/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": "SOFT-1",
            "csr": csr_b64(ec.generate_private_key(ec.SECP256R1())),
        },
    )
    assert r.status_code == 403
    assert r.json()["code"] == "se_not_genuine"
    assert r.json()["message"]
    assert_refused_and_audited(served, before)


def test_a_chip_attested_by_a_vendor_we_do_not_trust_is_refused(
    served: ServedBackend,
    backend: BackendClient,
    sim_device_set: DeviceSet,
    pkcs11_lib: Pkcs11Lib,
    new_token: TokenFactory,
    tmp_path: Path,
) -> None:
    """Optional proof, but a proof from another vendor CA is a forgery: refused anyway."""
    token = new_token()
    write_chip_id(pkcs11_lib, token_label=token.label, pin=token.pin, chip_id="FAKE-VENDOR-1")
    rogue = load_or_create_vendor(tmp_path / "rogue")
    with token_session(pkcs11_lib, token_label=token.label, pin=token.pin) as session:
        install_vendor_attestation(session, chip_id="FAKE-VENDOR-1", vendor=rogue)
    before = counts(served)
    with Pkcs11SecureElement.open(pkcs11_lib, token_label=token.label, pin=token.pin) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(se)
    assert (outcome.ok, outcome.code) == (False, "se_not_genuine")
    assert "does not chain to a trusted SE vendor root" in outcome.reason
    assert_refused_and_audited(served, before, reserved=1)


@pytest.mark.parametrize("attack", ["tampered_statement", "other_key", "replayed_on_chip_b"])
@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_a_tampered_or_misbound_proof_is_refused(
    served: ServedBackend,
    backend: BackendClient,
    sim_device_set: DeviceSet,
    attack: str,
    required: bool,
) -> None:
    require_genuine(served, required)
    label_a, label_b = chips(sim_device_set, 2)
    with sim_device_set.open(label_a) as a, sim_device_set.open(label_b) as b:
        target = b if attack == "replayed_on_chip_b" else a
        serial = backend.reserve_serial(
            station_id=STATION, work_order_id=WO, chip_id=target.chip_id
        )
        a.generate_identity_key()
        b.generate_identity_key()
        assert isinstance(a, Pkcs11SecureElement)
        proof = a.se_proof()
        assert proof is not None
        csr = build_csr(target, serial=serial)
        if attack == "tampered_statement":
            statement = json.loads(base64.b64decode(proof["statement"]))
            statement["key"]["extractable"] = True
            raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
            proof["statement"] = base64.b64encode(raw).decode()
        elif attack == "other_key":  # chip A's proof, for a key chip A never made
            csr = base64.b64decode(csr_b64(ec.generate_private_key(ec.SECP256R1())))
        before = counts(served)
        with pytest.raises(BackendUntrusting) as caught:
            backend.enroll(
                station_id=STATION,
                work_order_id=WO,
                serial=serial,
                chip_id=target.chip_id,
                csr_der=csr,
                se_proof=proof,
            )
    assert caught.value.code == "se_not_genuine"
    expected = {
        "tampered_statement": "signature does not verify",
        "other_key": "another public key",
        "replayed_on_chip_b": f"not to chip {target.chip_id}",
    }[attack]
    assert expected in caught.value.message
    assert_refused_and_audited(served, before)


def test_where_proof_is_optional_a_genuine_proof_is_recorded_and_none_is_fine(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet
) -> None:
    genuine, counterfeit = chips(sim_device_set, 1)[0], chips(sim_device_set, 1, attested=False)[0]
    proven, _ = provision(sim_device_set, backend, genuine)
    unproven, _ = provision(sim_device_set, backend, counterfeit)
    assert proven.ok and unproven.ok, (proven.reason, unproven.reason)
    ops = served.backend.operations
    records = [ops.device(o.serial) for o in (proven, unproven)]
    assert [r.se_proof for r in records if r] == ["pkcs11-vendor", None]
    policies = [r.certificate.extensions for r in records if r]
    assert policies[0].get_extension_for_class(x509.CertificatePolicies)
    with pytest.raises(x509.ExtensionNotFound):
        policies[1].get_extension_for_class(x509.CertificatePolicies)


def assert_refused_and_audited(
    served: ServedBackend, before: dict[str, int], *, reserved: int = 0
) -> None:
    """Nothing but the refusal's audit record and its security alert was written."""
    assert "se_not_genuine" in SECURITY_EVENTS
    after = counts(served)
    assert after == {
        **before,
        "serial_reservations": before["serial_reservations"] + reserved,
        "audit_events": before["audit_events"] + 2,
        "alerts": before["alerts"] + 1,
    }
    rows = served.backend.operations.alerts(limit=1)
    assert rows[0]["kind"] == "enrollment.se_not_genuine"
