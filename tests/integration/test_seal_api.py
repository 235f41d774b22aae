"""Sealing over HTTP to provisioned devices (SoftHSM2 and swtpm), opened on chip; refusals
write only their audit record."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from birthright.ca.authority import FactoryCa
from birthright.ca.se_vendors import trust_se_vendor
from birthright.cli.main import app as main_app
from birthright.db.audit import list_events
from birthright.db.engine import make_sessionmaker
from birthright.device.sealing import (
    device_serial,
    open_sealed,
    register_key_agreement_key,
    seal_for,
)
from birthright.errors import BirthrightError
from birthright.revocation.model import Reason
from birthright.se.sim import DeviceSet, create_devices
from birthright.se.swtpm import power_on, tpm_vendor_root_file
from birthright.se.vendor import load_or_create_vendor, vendor_root_file
from birthright.seal.envelope import Envelope, parse
from birthright.seal.opener import SealRefused
from birthright.seal.service import ka_statement
from birthright.server.backend import build_backend
from birthright.settings import Settings
from birthright.station.client import BackendClient, BackendRefused, BackendUntrusting
from birthright.station.provision import Station
from tests.conftest import ServedBackend, ThreadServer, seed_line

STATION, WO = "st-seal", "WO-SEAL"
TABLES = ("devices", "key_agreement_keys", "audit_events", "alerts")
_index = itertools.count(7500, 10)


@pytest.fixture
def tpm_dir(tmp_path: Path) -> Path:
    return tmp_path / "tpms"


@pytest.fixture
def served(
    settings: Settings, factory_ca: FactoryCa, tpm_dir: Path, sim_device_set: DeviceSet
) -> Iterator[ServedBackend]:
    load_or_create_vendor(sim_device_set.directory)
    trust_se_vendor(settings.ws, vendor_root_file(sim_device_set.directory).read_bytes())
    create_devices(tpm_dir, 1, pin="unused", kind="tpm", start_index=next(_index))
    trust_se_vendor(settings.ws, tpm_vendor_root_file(tpm_dir).read_bytes())
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


def _provision_token(served: ServedBackend, devices: DeviceSet) -> str:
    [made] = create_devices(devices.directory, 1, pin=devices.pin, start_index=next(_index))
    with BackendClient(served.url) as backend, devices.open(made.label) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=made.label
        )
    assert outcome.ok, outcome.reason
    return made.label


def _provision_tpm(served: ServedBackend, tpm_dir: Path) -> str:
    [made] = create_devices(tpm_dir, 1, pin="unused", kind="tpm", start_index=next(_index))
    with BackendClient(served.url) as backend, power_on(tpm_dir, made.label) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=made.label
        )
    assert outcome.ok, outcome.reason
    return made.label


def counts(served: ServedBackend) -> dict[str, int]:
    with served.backend.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def _serial_of(devices: DeviceSet, label: str) -> str:
    with devices.open(label) as se:
        return device_serial(se)


def test_a_token_device_opens_its_secret_on_chip_and_another_cannot(
    served: ServedBackend, sim_device_set: DeviceSet
) -> None:
    a, b = (_provision_token(served, sim_device_set) for _ in range(2))
    serial_a = _serial_of(sim_device_set, a)
    sealed = seal_for(
        served.url, serial_a, "wifi", b"ssid=plant;psk=per-device", token=served.token
    )
    with sim_device_set.open(a) as se:
        assert open_sealed(se, sealed, purpose="wifi") == b"ssid=plant;psk=per-device"
    with sim_device_set.open(b) as se, pytest.raises(SealRefused) as refused:
        open_sealed(se, sealed, purpose="wifi")
    assert refused.value.code == "seal_misaddressed"
    with sim_device_set.open(b) as se, pytest.raises(SealRefused) as refused:
        envelope = parse(sealed)  # readdressed to B: B's chip runs the ECDH, and it fails
        moved = Envelope(device_serial(se), "wifi", envelope.enc, envelope.ciphertext)
        open_sealed(se, moved.to_bytes(), purpose="wifi")
    assert refused.value.code == "seal_refused"
    [event] = list_events(make_sessionmaker(served.backend.engine), event="seal.created", limit=1)
    assert event.outcome == "ok" and "per-device" not in str(event)


def test_a_tpm_device_registers_its_key_agreement_key_then_opens_in_the_tpm(
    served: ServedBackend, tpm_dir: Path
) -> None:
    label = _provision_tpm(served, tpm_dir)
    with power_on(tpm_dir, label) as se:
        serial = device_serial(se)
        with pytest.raises(BackendRefused) as refused:  # no key to seal to yet
            seal_for(served.url, serial, "cloud-token", b"t0ken", token=served.token)
        assert refused.value.code == "no_key_agreement_key"
        register_key_agreement_key(se, served.url)
        sealed = seal_for(served.url, serial, "cloud-token", b"t0ken", token=served.token)
        assert open_sealed(se, sealed, purpose="cloud-token") == b"t0ken"
        tampered = bytearray(sealed)
        tampered[-5] ^= 0x40
        with pytest.raises(SealRefused):
            open_sealed(se, bytes(tampered), purpose="cloud-token")


def test_a_key_agreement_key_not_signed_by_the_identity_is_refused(
    served: ServedBackend, tpm_dir: Path, sim_device_set: DeviceSet
) -> None:
    label = _provision_tpm(served, tpm_dir)
    other = _provision_token(served, sim_device_set)
    with power_on(tpm_dir, label) as se, sim_device_set.open(other) as impostor:
        serial = device_serial(se)
        key = se.key_agreement_public_key()
        statement = ka_statement(serial, key)
        before = counts(served)
        body = {
            "public_key": base64.b64encode(statement.split(b"\x00", 2)[2]).decode(),
            "signature": base64.b64encode(impostor.sign(statement)).decode(),
        }
        r = httpx.put(f"{served.url}/v1/devices/{serial}/key-agreement-key", json=body)
    assert r.status_code == 403 and r.json()["code"] == "ka_key_signature"
    assert counts(served) == {**before, "audit_events": before["audit_events"] + 1}


@pytest.mark.parametrize("case", ["unknown", "revoked"])
def test_sealing_to_an_unknown_or_revoked_device_is_refused_and_audited(
    served: ServedBackend, sim_device_set: DeviceSet, case: str
) -> None:
    serial = "NO-SUCH-UNIT-1"
    if case == "revoked":
        serial = _serial_of(sim_device_set, _provision_token(served, sim_device_set))
        served.backend.revocation.revoke(serial, Reason.keyCompromise)
    before = counts(served)
    body = {"purpose": "wifi", "payload": base64.b64encode(b"secret").decode()}
    r = httpx.post(f"{served.url}/v1/devices/{serial}/sealed", json=body, headers=served.auth)
    expected = {"unknown": (404, "device_unknown"), "revoked": (403, "device_revoked")}[case]
    assert (r.status_code, r.json()["code"]) == expected
    # the operator's action and the refusal: nothing else
    assert counts(served) == {**before, "audit_events": before["audit_events"] + 2}
    [event] = list_events(make_sessionmaker(served.backend.engine), event="seal.created", limit=1)
    assert event.outcome == "refused" and event.code == expected[1]
    with pytest.raises(BirthrightError) as refused:
        seal_for(served.url, serial, "wifi", b"secret", token=served.token)
    assert isinstance(refused.value, BackendRefused | BackendUntrusting)


def test_bad_bodies_are_refused_with_stable_codes(served: ServedBackend) -> None:
    for body in (
        {"purpose": "Wi Fi", "payload": ""},
        {"purpose": "wifi", "payload": "!!"},
        {"purpose": "wifi", "payload": "", "extra": 1},
    ):
        r = httpx.post(f"{served.url}/v1/devices/SN-1/sealed", json=body, headers=served.auth)
        assert r.status_code == 422, body
        assert "code" in r.json()


def test_the_cli_seals_to_a_serial_and_the_device_opens_it(
    served: ServedBackend, sim_device_set: DeviceSet, tmp_path: Path
) -> None:
    label = _provision_token(served, sim_device_set)
    serial = _serial_of(sim_device_set, label)
    plain, sealed = tmp_path / "wifi.txt", tmp_path / "wifi.sealed"
    plain.write_bytes(b"ssid=line1;psk=only-this-unit")
    common = ["--server", served.url, "--purpose", "wifi"]
    done = CliRunner().invoke(
        main_app,
        ["seal", "to", serial, *common, "--in", str(plain), "--out", str(sealed)],
        env={"BIRTHRIGHT_OPERATOR_TOKEN": served.token},
    )
    assert done.exit_code == 0, done.output
    assert b"only-this-unit" not in sealed.read_bytes()
    pin_file = tmp_path / "pin"
    pin_file.write_text(sim_device_set.pin)
    device = [
        "--devices",
        str(sim_device_set.directory),
        "--label",
        label,
        "--pin-file",
        str(pin_file),
    ]
    try:  # the PIN file lives only as long as the command needs it
        opened = CliRunner().invoke(
            main_app, ["seal", "open", *device, "--purpose", "wifi", "--in", str(sealed)]
        )
    finally:
        pin_file.unlink()
    assert opened.exit_code == 0, opened.output
    assert opened.stdout_bytes == b"ssid=line1;psk=only-this-unit"
    refused = CliRunner().invoke(
        main_app,
        ["seal", "to", "NO-SUCH-1", *common, "--in", str(plain), "--out", str(sealed)],
        env={"BIRTHRIGHT_OPERATOR_TOKEN": served.token},
    )
    assert refused.exit_code != 0
    assert isinstance(refused.exception, BackendRefused)
    assert refused.exception.code == "device_unknown"
