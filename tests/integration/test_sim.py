"""Simulated devices: SoftHSM2 tokens in a private folder, made by API and by CLI.

A device folder has its own SoftHSM2 configuration, and this test process is already bound to
``softhsm_dir``'s: everything that opens the devices runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import ConfigError, ConflictError, InputError
from birthright.se.sim import (
    DeviceSet,
    SimulatedDevice,
    create_devices,
    list_devices,
    open_device_set,
    read_device_pin,
    write_device_pin,
)

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

PIN = "sim-pin-1234"
BIRTHRIGHT = Path(sys.executable).parent / "birthright"
CHIP_ID = re.compile(r"^[0-9A-F]{16}$")

OPEN_ALL = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from cryptography.hazmat.primitives import serialization
    from birthright.se.sim import open_device_set

    device_set = open_device_set(Path(sys.argv[1]), pin=sys.argv[2])
    out = []
    for device in device_set.devices():
        with device_set.open(device.label) as se:
            key = se.generate_identity_key()
            out.append({
                "label": device.label,
                "chip_id": se.chip_id,
                "public_key": key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode(),
                "signature": se.sign(b"hello").hex(),
            })
    print(json.dumps(out))
    """
)


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, **kwargs)


def test_create_three_devices(tmp_path: Path) -> None:
    conf_before = os.environ.get("SOFTHSM2_CONF")
    devices = create_devices(tmp_path, 3, pin=PIN)

    assert [d.label for d in devices] == ["sim-00000", "sim-00001", "sim-00002"]
    assert all(CHIP_ID.match(d.chip_id) for d in devices)
    assert len({d.chip_id for d in devices}) == 3
    assert all(d.kind == "pkcs11" for d in devices)
    assert json.loads((tmp_path / "devices.json").read_text()) == [
        {"label": d.label, "chip_id": d.chip_id, "kind": "pkcs11"} for d in devices
    ]
    conf = (tmp_path / "softhsm2.conf").read_text()
    assert f"directories.tokendir = {(tmp_path / 'tokens').resolve()}" in conf
    assert "objectstore.backend = file" in conf
    assert os.environ.get("SOFTHSM2_CONF") == conf_before  # this process was not rebound


def test_devices_append_and_labels_stay_unique(tmp_path: Path) -> None:
    first = create_devices(tmp_path, 2, pin=PIN)
    more = create_devices(tmp_path, 2, pin=PIN)
    assert [d.label for d in more] == ["sim-00002", "sim-00003"]
    assert list_devices(tmp_path) == first + more
    with pytest.raises(ConflictError):
        create_devices(tmp_path, 1, pin=PIN, start_index=1)
    assert list_devices(tmp_path) == first + more


def test_devices_open_and_sign_in_their_own_process(tmp_path: Path) -> None:
    devices = create_devices(tmp_path, 3, pin=PIN)
    done = _run([sys.executable, "-c", OPEN_ALL, str(tmp_path), PIN])
    assert done.returncode == 0, done.stderr
    opened = json.loads(done.stdout)
    assert [(o["label"], o["chip_id"]) for o in opened] == [(d.label, d.chip_id) for d in devices]
    for o in opened:
        key = serialization.load_pem_public_key(o["public_key"].encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(bytes.fromhex(o["signature"]), b"hello", ec.ECDSA(hashes.SHA256()))


def test_device_set_refuses_a_second_softhsm2_conf(pkcs11_lib: Pkcs11Lib, tmp_path: Path) -> None:
    create_devices(tmp_path, 1, pin=PIN)
    with pytest.raises(ConfigError) as caught:
        open_device_set(tmp_path, pin=PIN)
    assert caught.value.code == "softhsm2_conf_conflict"
    with pytest.raises(ConfigError):
        open_device_set(tmp_path / "empty", pin=PIN)


def test_devices_made_in_this_process_folder_open_at_once(sim_device_set: DeviceSet) -> None:
    """The folder this process is bound to gets its tokens in-process: no reload needed."""
    made = create_devices(sim_device_set.directory, 2, pin=sim_device_set.pin, start_index=90_000)
    assert [d.label for d in made] == ["sim-90000", "sim-90001"]
    for device in made:
        assert device in sim_device_set.devices()
        with sim_device_set.open(device.label) as se:
            assert se.chip_id == device.chip_id
            key = se.generate_identity_key()
            key.verify(se.sign(b"now"), b"now", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("pin", ["", "123", "x" * 256], ids=["empty", "too-short", "too-long"])
def test_bad_pins_are_refused(tmp_path: Path, pin: str) -> None:
    with pytest.raises(InputError):
        create_devices(tmp_path, 1, pin=pin)
    assert list_devices(tmp_path) == []


def test_device_pin_file_is_private(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        read_device_pin(tmp_path)
    write_device_pin(tmp_path, PIN)
    assert read_device_pin(tmp_path) == PIN
    assert stat.S_IMODE((tmp_path / "device-pin").stat().st_mode) == 0o600


def test_simulated_device_is_frozen() -> None:
    device = SimulatedDevice("sim-00000", "ABC")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        device.label = "other"  # type: ignore[misc]


def test_cli_creates_and_lists_devices(tmp_path: Path) -> None:
    folder = tmp_path / "devices"
    created = _run([str(BIRTHRIGHT), "sim", "devices", "create", "2", "--dir", str(folder)])
    assert created.returncode == 0, created.stderr
    devices = list_devices(folder)
    assert [d.label for d in devices] == ["sim-00000", "sim-00001"]
    for device in devices:
        assert device.label in created.stdout
        assert device.chip_id in created.stdout
    pin = read_device_pin(folder)
    assert pin not in created.stdout + created.stderr
    assert stat.S_IMODE((folder / "device-pin").stat().st_mode) == 0o600

    again = _run([str(BIRTHRIGHT), "sim", "devices", "create", "1", "--dir", str(folder)])
    assert again.returncode == 0, again.stderr
    listed = _run([str(BIRTHRIGHT), "sim", "devices", "list", "--dir", str(folder)])
    assert listed.returncode == 0, listed.stderr
    assert all(d.label in listed.stdout for d in list_devices(folder))
    assert len(list_devices(folder)) == 3

    opened = _run([sys.executable, "-c", OPEN_ALL, str(folder), pin])  # one PIN for all three
    assert opened.returncode == 0, opened.stderr
    assert len(json.loads(opened.stdout)) == 3

    wrong = _run(
        [
            str(BIRTHRIGHT),
            "sim",
            "devices",
            "create",
            "1",
            "--dir",
            str(folder),
            "--pin",
            "other-pin",
        ]
    )
    assert wrong.returncode == 2
    assert "other-pin" not in wrong.stdout + wrong.stderr
