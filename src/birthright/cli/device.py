"""`birthright device` commands: the reference device agent."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from birthright.cli.common import console
from birthright.device.agent import RunningFirmware, read_firmware_file
from birthright.device.agent import attest as attest_once
from birthright.errors import BirthrightError
from birthright.station.client import BackendClient

app = typer.Typer(help="Device agent commands.", no_args_is_help=True)


def device_client(server: str, ca_file: Path | None) -> BackendClient:
    """A device's view of the backend: HTTPS checked against the factory root when given."""
    if ca_file is None:
        return BackendClient(server)
    return BackendClient(server, verify=ssl.create_default_context(cafile=str(ca_file)))


def attest_devices(
    *,
    devices: Path,
    server: str,
    labels: list[str] | None = None,
    pin: str | None = None,
    ca_file: Path | None = None,
    firmware: RunningFirmware | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Attest each device (all when ``labels`` is None); returns (label, verdict) pairs.

    Each device reports ``firmware`` when given, else its entry in ``devices/firmware.json``
    when that file exists, else identity-only evidence.
    """
    from birthright.se.sim import open_device_set, read_device_pin

    device_set = open_device_set(devices, pin=pin or read_device_pin(devices))
    chosen = labels or [d.label for d in device_set.devices()]
    results = []
    with device_client(server, ca_file) as backend:
        for label in chosen:
            with device_set.open(label) as se:
                try:
                    running = firmware or read_firmware_file(devices, label)
                    result = attest_once(se, backend, now=datetime.now(UTC), firmware=running)
                except BirthrightError as e:
                    result = {
                        "serial": "",
                        "verdict": "error",
                        "checks": [],
                        "code": e.code,
                        "message": e.message,
                    }
            results.append((label, result))
    return results


@app.command()
def attest(
    devices: Annotated[Path, typer.Option("--devices", help="Folder of simulated devices.")],
    server: Annotated[str, typer.Option("--server", help="Backend base URL.")],
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Device label(s); default all.")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Factory root (root.pem) to check the HTTPS server.")
    ] = None,
    firmware: Annotated[
        Path | None, typer.Option("--firmware", help="Firmware image the devices run.")
    ] = None,
    firmware_version: Annotated[
        str | None, typer.Option("--firmware-version", help="Version of that image.")
    ] = None,
) -> None:
    """Prove each device's identity (and firmware) with a fresh, chip-signed challenge."""
    if (firmware is None) != (firmware_version is None):
        raise typer.BadParameter("--firmware and --firmware-version go together")
    running = (
        RunningFirmware.from_image(firmware, firmware_version)
        if firmware is not None and firmware_version is not None
        else None
    )
    results = attest_devices(
        devices=devices, server=server, labels=label, ca_file=ca_file, firmware=running
    )
    table = Table("device", "serial", "verdict", "status", "checks")
    for name, r in results:
        checks = ", ".join(c["id"] for c in r["checks"]) or r.get("message", "")
        colour = "green" if r["verdict"] == "pass" else "red"
        status = r.get("status", "")
        table.add_row(name, r["serial"], f"[{colour}]{r['verdict']}[/]", status, checks)
    console.print(table)
    if any(r["verdict"] != "pass" for _n, r in results):
        raise typer.Exit(code=1)
