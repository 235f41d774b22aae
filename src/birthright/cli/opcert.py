"""`birthright opcert`: a device trades a fresh factory proof for an operational certificate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.cli.common import console
from birthright.cli.seal import DevicesOpt, LabelOpt, PinFileOpt, ServerOpt, open_device
from birthright.device.operational import renew_if_due

app = typer.Typer(help="Operational (LDevID-style) certificates.", no_args_is_help=True)


@app.command("renew")
def renew(
    devices: DevicesOpt,
    label: LabelOpt,
    server: ServerOpt,
    out: Annotated[Path, typer.Option("--out", help="The device's operational cert (PEM).")],
    pin_file: PinFileOpt = None,
) -> None:
    """Get an operational certificate, or a new one when ``--out`` holds one that is due."""
    current = x509.load_pem_x509_certificate(out.read_bytes()) if out.exists() else None
    with open_device(devices, label, pin_file) as se:
        cert = renew_if_due(se, current, server, now=datetime.now(UTC))
    if cert is current:
        console.print(f"{label}: current certificate valid until {cert.not_valid_after_utc}")
        return
    out.write_bytes(cert.public_bytes(Encoding.PEM))
    console.print(f"{label}: new operational certificate until {cert.not_valid_after_utc}: {out}")
