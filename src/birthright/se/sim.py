"""Simulated secure elements: one SoftHSM2 token per device, all in one private folder.

Layout of a device folder ``DIR``:

- ``softhsm2.conf`` — a private SoftHSM2 configuration; tokens live in ``DIR/tokens``.
- ``devices.json`` — ``[{"label": "sim-00000", "chip_id": "…", "kind": "pkcs11"}, …]``.
- ``device-pin`` — (optional, dev convenience) the devices' user PIN, mode 0600.
- ``vendor-ca/`` — the simulated chip vendor's CA (``birthright.se.vendor``).

Using devices in-process (``open_device_set``) binds this process to the folder's
configuration, because SoftHSM2 reads ``SOFTHSM2_CONF`` once, in ``C_Initialize``. Creating
devices does not bind it: tokens are initialised by a worker process
(``python -m birthright.se.sim``) that gets ``SOFTHSM2_CONF`` in its own environment and the
PINs on stdin, one ``C_Initialize`` for the whole batch — unless this process is already bound
to the folder, in which case they are made here so that they are visible at once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birthright.errors import BirthrightError, ConfigError, ConflictError, DeviceError, InputError
from birthright.se._p11 import bound_module, guard
from birthright.se.attestation import install_vendor_attestation
from birthright.se.pkcs11 import (
    Pkcs11SecureElement,
    create_tokens,
    load_module,
    store_chip_id,
    write_softhsm2_conf,
)
from birthright.se.swtpm import manufacture_tpm, power_on
from birthright.se.tpm import TpmSecureElement
from birthright.se.vendor import SimulatedVendor, load_or_create_vendor, load_vendor
from birthright.settings import SOFTHSM2_MODULE
from birthright.types import ChipId
from birthright.workspace import read_secret_file, write_secret_file

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

CONF_FILE = "softhsm2.conf"
TOKEN_DIR = "tokens"  # noqa: S105 - a folder name
DEVICES_FILE = "devices.json"
PIN_FILE = "device-pin"
LABEL_PREFIX = "sim-"
KINDS = ("pkcs11", "tpm")
_LABEL = re.compile(r"^sim-(\d+)$")


@dataclass(frozen=True)
class SimulatedDevice:
    label: str
    chip_id: ChipId
    kind: str = "pkcs11"


def check_pin(pin: str) -> None:
    """SoftHSM2 accepts user PINs of 4-255 bytes."""
    if not 4 <= len(pin.encode()) <= 255:
        raise InputError("a device PIN must be 4-255 bytes long", code="bad_pin")


def create_devices(
    directory: Path,
    count: int,
    *,
    pin: str,
    module_path: str = SOFTHSM2_MODULE,
    start_index: int | None = None,
    vendor_attestation: bool = True,
    kind: str = "pkcs11",
) -> list[SimulatedDevice]:
    """Create ``count`` simulated devices in ``directory`` (appending to earlier ones).

    Labels are ``sim-<index, 5 digits>`` from ``start_index`` (default: after the last
    existing device); each token gets a random 16-hex-digit chip id. The tokens' SO PIN is
    random and discarded, as a real chip's factory credentials would be. With
    ``vendor_attestation`` (default) each token also gets an attestation key certified by
    the folder's simulated chip vendor (``birthright.se.vendor``); without it the parts play
    counterfeits that cannot prove they are genuine.

    ``kind="tpm"`` makes TPM 2.0 devices instead: one swtpm state each, manufactured with
    an EK certificate from the folder's simulated TPM vendor (``birthright.se.swtpm``; from
    an untrusted rogue maker without ``vendor_attestation``); the chip id derives from the EK.
    """
    if count < 1:
        raise InputError("count must be at least 1")
    if kind not in KINDS:
        raise InputError(f"device kind must be one of {', '.join(KINDS)}", code="bad_kind")
    check_pin(pin)
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / CONF_FILE
    if not conf.exists():
        write_softhsm2_conf(conf, directory / TOKEN_DIR)
    existing = list_devices(directory)
    if start_index is None:
        indices = [int(m.group(1)) for d in existing if (m := _LABEL.match(d.label))]
        start_index = max(indices, default=-1) + 1
    new = [
        SimulatedDevice(f"{LABEL_PREFIX}{i:05d}", ChipId(secrets.token_hex(8).upper()))
        for i in range(start_index, start_index + count)
    ]
    clashes = {d.label for d in existing} & {d.label for d in new}
    if clashes:
        raise ConflictError(f"devices already exist: {', '.join(sorted(clashes))}")
    if kind == "tpm":
        return _create_tpms(directory, existing, new, genuine=vendor_attestation)
    vendor = load_or_create_vendor(directory) if vendor_attestation else None
    lib = bound_module(module_path, conf)
    if lib is None:  # keep this process unbound: a worker process makes the tokens
        created, error = _run_worker(conf, module_path, pin, new, vendor is not None)
    else:  # this process already uses the folder: make them here, visible at once
        created, error = [], None
        try:
            _provision(lib, pin, new, created.append, vendor)
        except BirthrightError as e:
            error = e
    _write_devices(directory, existing + created)
    if error is not None:
        raise error
    return created


def _create_tpms(
    directory: Path,
    existing: list[SimulatedDevice],
    new: list[SimulatedDevice],
    *,
    genuine: bool,
) -> list[SimulatedDevice]:
    created: list[SimulatedDevice] = []
    try:
        for device in new:
            manufacture_tpm(directory, device.label, genuine=genuine)
            with power_on(directory, device.label) as se:  # a TPM's chip id is its EK's
                created.append(SimulatedDevice(device.label, se.chip_id, "tpm"))
    finally:
        _write_devices(directory, existing + created)
    return created


def _run_worker(
    conf: Path, module_path: str, pin: str, devices: list[SimulatedDevice], attested: bool
) -> tuple[list[SimulatedDevice], BirthrightError | None]:
    request = {
        "module": module_path,
        "pin": pin,
        "vendor_dir": str(conf.parent.resolve()) if attested else None,
        "devices": [{"label": d.label, "chip_id": d.chip_id} for d in devices],
    }
    env = {**os.environ, "SOFTHSM2_CONF": str(conf.resolve())}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "birthright.se.sim"],
            input=json.dumps(request),
            env=env,
            capture_output=True,
            text=True,
            timeout=60 + len(devices),
        )
    except subprocess.TimeoutExpired as e:
        raise DeviceError("creating simulated devices timed out") from e
    by_label = {d.label: d for d in devices}
    created: list[SimulatedDevice] = []
    error: BirthrightError | None = None
    for line in done.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "created" in message:
            created.append(by_label[message["created"]])
        elif "error" in message:
            error = DeviceError(message["error"], code=message["code"])
    if error is None and len(created) != len(devices):
        error = DeviceError(f"the token worker failed: {done.stderr.strip()[-300:]}")
    return created, error


def _provision(
    lib: Pkcs11Lib,
    pin: str,
    devices: list[SimulatedDevice],
    on_created: Callable[[SimulatedDevice], None],
    vendor: SimulatedVendor | None = None,
) -> None:
    """Initialise one token per device, program its chip id and, with ``vendor``, give it
    a vendor-certified attestation key."""
    so_pin = secrets.token_urlsafe(16)
    tokens = create_tokens(lib, [d.label for d in devices], so_pin=so_pin, pin=pin)
    for device, token in zip(devices, tokens, strict=True):
        with guard("programming the chip id"), token.open(rw=True, user_pin=pin) as session:
            store_chip_id(session, device.chip_id)
            if vendor is not None:
                install_vendor_attestation(session, chip_id=device.chip_id, vendor=vendor)
        on_created(device)


def _worker_main() -> int:
    """Worker process: initialise the requested tokens and program their chip ids."""
    request = json.load(sys.stdin)
    devices = [SimulatedDevice(d["label"], ChipId(d["chip_id"])) for d in request["devices"]]

    def report(device: SimulatedDevice) -> None:
        print(json.dumps({"created": device.label}), flush=True)

    try:
        vendor = load_vendor(Path(request["vendor_dir"])) if request.get("vendor_dir") else None
        _provision(load_module(request["module"]), request["pin"], devices, report, vendor)
    except BirthrightError as e:
        print(json.dumps({"error": e.message, "code": e.code}), flush=True)
        return 1
    return 0


def list_devices(directory: Path) -> list[SimulatedDevice]:
    """The devices recorded in ``directory`` (empty when there are none yet)."""
    path = directory / DEVICES_FILE
    if not path.exists():
        return []
    try:
        rows: Any = json.loads(path.read_text())
        return [
            SimulatedDevice(str(r["label"]), ChipId(str(r["chip_id"])), str(r["kind"]))
            for r in rows
        ]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a valid device list") from e


def _write_devices(directory: Path, devices: list[SimulatedDevice]) -> None:
    path = directory / DEVICES_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([asdict(d) for d in devices], indent=2) + "\n")
    tmp.replace(path)


def write_device_pin(directory: Path, pin: str) -> None:
    """Store the devices' PIN in ``DIR/device-pin``, readable by the owner only (dev only)."""
    check_pin(pin)
    directory.mkdir(parents=True, exist_ok=True)
    write_secret_file(directory / PIN_FILE, pin)


def read_device_pin(directory: Path) -> str:
    path = directory / PIN_FILE
    if not path.exists():
        raise ConfigError(f"no device PIN stored in {directory}; pass the PIN explicitly")
    return read_secret_file(path)


class DeviceSet:
    """The simulated devices of one folder, opened through this process's PKCS#11 module."""

    def __init__(self, directory: Path, *, lib: Pkcs11Lib, pin: str) -> None:
        self.directory = directory
        self.pin = pin
        self._lib = lib

    def devices(self) -> list[SimulatedDevice]:
        return list_devices(self.directory)

    def open(self, label: str) -> Pkcs11SecureElement | TpmSecureElement:
        """Open (for a TPM: power on) one device's secure element; use it as a context
        manager."""
        device = next((d for d in self.devices() if d.label == label), None)
        if device is None:
            raise DeviceError(
                f"no simulated device {label!r} in {self.directory}", code="token_not_found"
            )
        if device.kind == "tpm":
            return power_on(self.directory, label)
        return Pkcs11SecureElement.open(self._lib, token_label=label, pin=self.pin)


def open_device_set(directory: Path, *, pin: str, module_path: str = SOFTHSM2_MODULE) -> DeviceSet:
    """Bind this process's PKCS#11 module to ``directory``'s SoftHSM2 configuration.

    Sets ``SOFTHSM2_CONF`` before the module is first loaded; raises ``ConfigError`` when the
    module is already loaded here with another configuration.
    """
    conf = directory / CONF_FILE
    if not conf.exists():
        raise ConfigError(f"{directory} holds no simulated devices (no {CONF_FILE})")
    lib = load_module(module_path, softhsm2_conf=conf)
    return DeviceSet(directory, lib=lib, pin=pin)


if __name__ == "__main__":
    sys.exit(_worker_main())
