"""`birthright sim` commands: simulated secure elements (SoftHSM2 tokens) for demos and tests."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli.common import console
from birthright.errors import ConfigError
from birthright.se.sim import (
    PIN_FILE,
    SimulatedDevice,
    create_devices,
    list_devices,
    read_device_pin,
    write_device_pin,
)
from birthright.se.swtpm import tpm_vendor_root_file
from birthright.se.vendor import vendor_root_file
from birthright.settings import SOFTHSM2_MODULE

app = typer.Typer(help="Simulated secure elements for demos and tests.", no_args_is_help=True)
devices_app = typer.Typer(help="Create and list simulated devices.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Folder of simulated devices (created when missing).")
]


def _table(devices: list[SimulatedDevice]) -> Table:
    table = Table("label", "chip id", "kind")
    for d in devices:
        table.add_row(d.label, d.chip_id, d.kind)
    return table


def _pin_for(directory: Path, given: str | None) -> str:
    """The PIN for new devices: the folder's stored PIN, the given one, or a new random one."""
    stored = read_device_pin(directory) if (directory / PIN_FILE).exists() else None
    if given is not None and stored is not None and given != stored:
        raise ConfigError(
            f"the devices in {directory} use the PIN stored in {PIN_FILE}; pass that PIN or none",
            code="pin_mismatch",
        )
    pin = given or stored or secrets.token_urlsafe(12)
    if stored is None:
        write_device_pin(directory, pin)
    return pin


@devices_app.command("create")
def create(
    count: Annotated[int, typer.Argument(min=1, max=10_000, help="How many devices.")],
    directory: DirOpt,
    pin: Annotated[
        str | None,
        typer.Option(
            "--pin",
            envvar="BIRTHRIGHT_DEVICE_PIN",
            help="User PIN for the new tokens; default: the folder's stored PIN or a random one.",
        ),
    ] = None,
    module: Annotated[str, typer.Option("--module", help="SoftHSM2 module.")] = SOFTHSM2_MODULE,
    vendor_attestation: Annotated[
        bool,
        typer.Option(
            help="Give each chip an attestation key certified by the folder's simulated chip "
            "vendor; --no-vendor-attestation makes parts that cannot prove they are genuine.",
        ),
    ] = True,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="pkcs11: one SoftHSM2 token each; tpm: one swtpm TPM 2.0 each, with a vendor "
            "EK certificate (from an untrusted maker with --no-vendor-attestation).",
        ),
    ] = "pkcs11",
) -> None:
    """Create COUNT simulated devices (SoftHSM2 tokens or swtpm TPMs) with their chip ids."""
    directory.mkdir(parents=True, exist_ok=True)
    device_pin = _pin_for(directory, pin)
    started = time.perf_counter()
    created = create_devices(
        directory,
        count,
        pin=device_pin,
        module_path=module,
        vendor_attestation=vendor_attestation,
        kind=kind,
    )
    console.print(_table(created))
    if kind == "tpm" and vendor_attestation:
        console.print(
            f"TPM vendor: EK root in {tpm_vendor_root_file(directory)} "
            "(trust it with `birthright ca trust-se-vendor`)"
        )
    elif vendor_attestation:
        console.print(
            f"vendor attestation: chip vendor root in {vendor_root_file(directory)} "
            "(trust it with `birthright ca trust-se-vendor`)"
        )
    console.print(
        f"created {len(created)} devices in {time.perf_counter() - started:.2f} s; "
        f"PIN in {directory / PIN_FILE} (mode 0600)"
    )


@devices_app.command("list")
def list_(directory: DirOpt) -> None:
    """List the simulated devices in a folder."""
    devices = list_devices(directory)
    if not devices:
        console.print(f"no simulated devices in {directory}")
        return
    console.print(_table(devices))
