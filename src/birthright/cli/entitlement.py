"""`birthright entitlement`: claim (as the device, over HTTP), transfer and list.

``claim`` runs on the device side: the simulated unit signs a fresh device-auth token with its
secure element and presents it with the claim. ``transfer`` and ``list`` act on the workspace's
database directly, as an operator on the backend host would.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.cli.device import device_client
from birthright.db.audit_sink import SqlAuditSink
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.entitlements import SqlEntitlementStore
from birthright.deviceauth.service import DeviceSession
from birthright.entitlements.model import Entitlement
from birthright.entitlements.service import EntitlementService
from birthright.errors import ConfigError

app = typer.Typer(help="Warranties and subscriptions bound to a serial.", no_args_is_help=True)


def _no_device_auth(**_kwargs: object) -> DeviceSession:
    raise ConfigError("claims are made by the device itself: use `entitlement claim`")


def _service(workspace: Path) -> EntitlementService:
    settings = settings_for(workspace)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    return EntitlementService(
        store=SqlEntitlementStore(sessions),
        authenticate=_no_device_auth,
        audit=SqlAuditSink(sessions),
        clock=lambda: datetime.now(UTC),
    )


def _row(e: Entitlement, today: date) -> dict[str, str]:
    t = e.terms
    return {
        "serial": e.serial,
        "plan": t.plan,
        "kind": t.kind,
        "starts_on": t.starts_on.isoformat(),
        "ends_on": t.ends_on.isoformat(),
        "owner": e.owner,
        "status": e.status(today),
    }


@app.command("claim")
def claim(
    devices: Annotated[Path, typer.Option("--devices", help="Folder of simulated devices.")],
    label: Annotated[str, typer.Option("--label", help="The device that claims.")],
    server: Annotated[str, typer.Option("--server", help="Backend base URL.")],
    plan: Annotated[str, typer.Option(help="Plan name, e.g. warranty-2y.")],
    owner: Annotated[str, typer.Option(help="Owner reference (account id).")],
    ends_on: Annotated[str, typer.Option(help="Last day, ISO date.")],
    kind: Annotated[str, typer.Option(help="warranty or subscription.")] = "warranty",
    starts_on: Annotated[str | None, typer.Option(help="First day (default today).")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="Factory root to check HTTPS.")] = None,
) -> None:
    """Claim as the device: its secure element signs a fresh, challenge-bound token."""
    from birthright.device.agent import device_serial
    from birthright.device.auth import chain_pem, fresh_token
    from birthright.se.sim import open_device_set, read_device_pin

    device_set = open_device_set(devices, pin=read_device_pin(devices))
    with device_client(server, ca_file) as backend, device_set.open(label) as se:
        token = fresh_token(se, backend, now=datetime.now(UTC))
        body = {
            "serial": device_serial(se),
            "plan": plan,
            "kind": kind,
            "starts_on": starts_on or datetime.now(UTC).date().isoformat(),
            "ends_on": ends_on,
            "owner": owner,
            "token": base64.b64encode(token).decode(),
            "chain": chain_pem(se),
        }
        made = backend.post_json("/v1/entitlements/claims", body)
    console.print(f"{made['serial']} {made['plan']} {made['status']} owner {made['owner']}")
    console.print(f"transfer secret (shown once, keep it safe): {made['transfer_secret']}")


@app.command("transfer")
def transfer(
    serial: Annotated[str, typer.Argument(help="Product serial.")],
    plan: Annotated[str, typer.Argument(help="Plan name.")],
    from_owner: Annotated[str, typer.Option("--from", help="The current owner reference.")],
    to_owner: Annotated[str, typer.Option("--to", help="The new owner reference.")],
    secret_file: Annotated[
        Path, typer.Option("--secret-file", help="File holding the owner's transfer secret.")
    ],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Hand an entitlement to a new owner; refused (and audited) unless --from owns it and
    the secret is its current one. The new owner's secret is written back to the file."""
    secret = secret_file.read_text().strip()
    moved = _service(workspace).transfer(
        serial, plan, from_owner=from_owner, to_owner=to_owner, transfer_secret=secret
    )
    secret_file.write_text(moved.transfer_secret + "\n")
    e = moved.entitlement
    console.print(f"{e.serial} {e.terms.plan} now owned by {e.owner}; new secret in {secret_file}")


@app.command("list")
def list_(
    serial: Annotated[str | None, typer.Option(help="By serial.")] = None,
    owner: Annotated[str | None, typer.Option(help="By owner reference.")] = None,
    plan: Annotated[str | None, typer.Option(help="By plan.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Entitlements by serial, owner or plan; a revoked unit's show as suspended."""
    today = datetime.now(UTC).date()
    rows = [_row(e, today) for e in _service(workspace).find(serial=serial, owner=owner, plan=plan)]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("serial", "plan", "kind", "starts", "ends", "owner", "status")
    for r in rows:
        colour = "green" if r["status"] == "active" else "yellow"
        table.add_row(
            r["serial"], r["plan"], r["kind"], r["starts_on"], r["ends_on"], r["owner"],
            f"[{colour}]{r['status']}[/]",
        )  # fmt: skip
    console.print(table)
