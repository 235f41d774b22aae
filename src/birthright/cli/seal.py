"""`birthright seal`: seal a payload to one device, and the device side (ADR 0010)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from birthright.cli.common import console
from birthright.device.sealing import open_sealed, register_key_agreement_key, seal_for

if TYPE_CHECKING:
    from birthright.se.pkcs11 import Pkcs11SecureElement
    from birthright.se.tpm import TpmSecureElement

app = typer.Typer(help="Per-device sealed payloads.", no_args_is_help=True)

ServerOpt = Annotated[str, typer.Option("--server", help="Backend base URL.")]
PurposeOpt = Annotated[str, typer.Option("--purpose", help="What the payload is for (a-z0-9._-).")]
DevicesOpt = Annotated[Path, typer.Option("--devices", help="Folder of simulated devices.")]
LabelOpt = Annotated[str, typer.Option("--label", help="The device's label.")]
PinFileOpt = Annotated[
    Path | None,
    typer.Option("--pin-file", help="File holding the device PIN; default the folder's own."),
]


def open_device(
    devices: Path, label: str, pin_file: Path | None
) -> Pkcs11SecureElement | TpmSecureElement:
    from birthright.se.sim import open_device_set, read_device_pin
    from birthright.workspace import read_secret_file

    pin = read_secret_file(pin_file) if pin_file is not None else read_device_pin(devices)
    return open_device_set(devices, pin=pin).open(label)


@app.command("to")
def seal_to(
    serial: Annotated[str, typer.Argument(help="The device's serial.")],
    server: ServerOpt,
    purpose: PurposeOpt,
    infile: Annotated[Path, typer.Option("--in", help="The plaintext file.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the envelope.")],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="BIRTHRIGHT_OPERATOR_TOKEN",
            help="Operator API token (birthright operator token NAME).",
        ),
    ],
) -> None:
    """Seal a file to one live device; only its secure element can open the envelope."""
    envelope = seal_for(server, serial, purpose, infile.read_bytes(), token=token)
    out.write_bytes(envelope)
    console.print(f"sealed {infile.stat().st_size} bytes to {serial} ({purpose}): {out}")


@app.command("register-key")
def register_key(
    devices: DevicesOpt, label: LabelOpt, server: ServerOpt, pin_file: PinFileOpt = None
) -> None:
    """Send the device's key-agreement key to the backend, signed by its identity key."""
    with open_device(devices, label, pin_file) as se:
        register_key_agreement_key(se, server)
    console.print(f"{label}: key-agreement key registered")


@app.command("open")
def open_envelope(
    devices: DevicesOpt,
    label: LabelOpt,
    purpose: PurposeOpt,
    infile: Annotated[Path, typer.Option("--in", help="The envelope file.")],
    pin_file: PinFileOpt = None,
) -> None:
    """Open an envelope on the device (ECDH on chip); writes the plaintext to stdout."""
    with open_device(devices, label, pin_file) as se:
        plaintext = open_sealed(se, infile.read_bytes(), purpose=purpose)
    sys.stdout.buffer.write(plaintext)
