"""The ``birthright`` console script."""

from __future__ import annotations

import typer

from birthright.cli import (
    audit,
    ca,
    device,
    entitlement,
    events,
    firmware,
    opcert,
    operator,
    product,
    seal,
    sim,
    station,
    workorder,
)
from birthright.cli.common import run_cli
from birthright.cli.demo import demo
from birthright.cli.reconcile import chips_app, shipments_app
from birthright.cli.report import report_app
from birthright.cli.revoke import crl, recall_app, revocation_app, revoke
from birthright.cli.serve import db_app, serve
from birthright.cli.status import serve_status

app = typer.Typer(
    name="birthright",
    help="Give every device a cryptographic identity at the factory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sim.app, name="sim")
app.add_typer(ca.app, name="ca")
app.add_typer(station.app, name="station")
app.add_typer(device.app, name="device")
app.add_typer(workorder.app, name="workorder")
app.add_typer(product.app, name="product")
app.add_typer(audit.app, name="audit")
app.add_typer(firmware.app, name="firmware")
app.add_typer(db_app, name="db")
app.add_typer(revocation_app, name="revocation")
app.add_typer(recall_app, name="recall")
app.add_typer(shipments_app, name="shipments")
app.add_typer(chips_app, name="chips")
app.add_typer(report_app, name="report")
app.add_typer(entitlement.app, name="entitlement")
app.add_typer(seal.app, name="seal")
app.add_typer(opcert.app, name="opcert")
app.add_typer(operator.app, name="operator")
app.add_typer(operator.admin_app, name="admin")
app.add_typer(events.app, name="events")
app.command()(crl)
app.command("revoke")(revoke)
app.command()(serve)
app.command("serve-status")(serve_status)
app.command()(demo)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
