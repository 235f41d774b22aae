"""`birthright demo`: a small production run, end to end, on embedded defaults."""

from __future__ import annotations

import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console
from birthright.cli.device import attest_devices
from birthright.cli.station import run_provisioning
from birthright.demo.service import ServiceProcess
from birthright.demo.showcase import (
    audit_intact,
    export_certificates,
    over_quota_refused,
    replayed_nonce_refused,
    shared_key_refused,
)
from birthright.errors import ConfigError
from birthright.settings import load_settings, write_settings_file
from birthright.station.client import BackendClient
from birthright.workspace import Workspace

STATION_ID = "site1-line1-st1"
WORK_ORDER_ID = "WO-DEMO-0001"
REWORK_ORDER_ID = "WO-DEMO-0002"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, max=2000)] = 25,
    reset: Annotated[
        bool, typer.Option(help="Delete an earlier demo workspace at the same path first.")
    ] = False,
) -> None:
    """Provision and attest a simulated production run; leaves everything in the workspace."""
    from birthright.audit.signing import load_or_create_audit_signer
    from birthright.ca.authority import init_workspace_ca
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.migrate import upgrade
    from birthright.db.operations import Operations, WorkOrders
    from birthright.enrollment.model import WorkOrderSpec
    from birthright.se.sim import create_devices, open_device_set, write_device_pin

    started = time.perf_counter()
    ws = Workspace(workspace.resolve())
    if ws.settings_file.exists():
        if not reset:
            raise ConfigError(
                f"{ws.root} already holds a workspace; pass --reset to replace it",
                code="workspace_exists",
            )
        shutil.rmtree(ws.root)
    ws.create()
    settings = load_settings(ws.root, port=_free_port())
    write_settings_file(settings, ("port", "organization", "product", "serial_prefix"))

    console.rule("[bold]1. Factory CA")
    ca = init_workspace_ca(settings, now=datetime.now(UTC))
    load_or_create_audit_signer(settings)
    console.print(f"root    {ca.root_cert.subject.rfc4514_string()}")
    console.print(f"issuing {ca.issuing_cert.subject.rfc4514_string()}")

    console.rule("[bold]2. Identity service")
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    ops = Operations(make_sessionmaker(engine))
    now = datetime.now(UTC)
    ops.register_station(STATION_ID, site="site1", line="line1", now=now)
    orders = WorkOrders(make_sessionmaker(engine))
    order = orders.open(
        WorkOrderSpec(
            work_order_id=WORK_ORDER_ID,
            product=settings.product,
            site="site1",
            line="line1",
            quantity=devices,
            serial_prefix=settings.serial_prefix,
            serial_first=1,
            serial_last=devices * 2,
            valid_from=now,
            valid_until=now + timedelta(days=30),
            rate_ceiling_per_minute=600,
        ),
        now=now,
    )
    # A second, small order on the same line: the red-team attempts below run against it.
    orders.open(
        WorkOrderSpec(
            work_order_id=REWORK_ORDER_ID,
            product=settings.product,
            site="site1",
            line="line1",
            quantity=1,
            serial_prefix=settings.serial_prefix + "R",
            serial_first=1,
            serial_last=10,
            valid_from=now,
            valid_until=now + timedelta(days=30),
        ),
        now=now,
    )
    console.print(
        f"work order {order.work_order_id}: {order.quantity} × {order.product} "
        f"on {order.site}/{order.line}"
    )
    with ServiceProcess(ws, settings.effective_public_url) as service:
        console.print(f"serving on {service.url} (SQLite {ws.database_file})")

        console.rule(f"[bold]3. {devices} simulated secure elements (SoftHSM2 tokens)")
        pin = ws.secret("device-pin", create=True)
        t = time.perf_counter()
        create_devices(ws.devices_dir, devices, pin=pin)
        write_device_pin(ws.devices_dir, pin)
        console.print(f"created {devices} tokens in {time.perf_counter() - t:.2f} s")

        console.rule("[bold]4. Provisioning station")
        run = run_provisioning(
            devices=ws.devices_dir,
            server=service.url,
            station_id=STATION_ID,
            work_order=WORK_ORDER_ID,
            journal=ws.root / "station" / "journal.db",
        )

        console.rule("[bold]5. Attestation")
        t = time.perf_counter()
        verdicts = attest_devices(devices=ws.devices_dir, server=service.url, pin=pin)
        attest_seconds = time.perf_counter() - t
        passed = sum(1 for _label, r in verdicts if r["verdict"] == "pass")
        console.print(f"{passed}/{len(verdicts)} devices attested in {attest_seconds:.2f} s")
        replay = replayed_nonce_refused(ws.devices_dir, service.url, pin=pin)
        console.print(f"replayed nonce → verdict [bold]{replay}[/]")

        console.rule("[bold]6. The factory is not trusted")
        device_set = open_device_set(ws.devices_dir, pin=pin)
        with BackendClient(service.url) as backend:
            refusals = {
                "one unit's key copied into a second unit": shared_key_refused(
                    device_set, backend, station_id=STATION_ID, work_order_id=REWORK_ORDER_ID
                ),
                "one unit more than the work order allows": over_quota_refused(
                    device_set, backend, station_id=STATION_ID, work_order_id=WORK_ORDER_ID
                ),
            }
        for attempt, code in refusals.items():
            console.print(f"{attempt} → refused [bold]{code}[/]")

    console.rule("[bold]7. Certificates and audit")
    exported = export_certificates(ops, ca, ws.certs_dir)
    console.print(f"exported {exported} device certificates to {ws.certs_dir}/devices/")
    audit = audit_intact(settings, make_sessionmaker(engine))
    engine.dispose()
    console.print(
        f"audit chain: {audit.rows_checked} events, {audit.checkpoints_verified} signed "
        f"checkpoint(s), {'intact' if audit.ok else 'BROKEN'}"
    )

    wall = time.perf_counter() - started
    _summary(
        ws.root,
        devices=devices,
        good=run.good,
        failed=run.failed,
        units_per_second=run.units_per_second,
        attested=passed,
        replay=replay,
        refusals=refusals,
        audit_ok=audit.ok,
        audit_rows=audit.rows_checked,
        wall=wall,
    )
    expected = ["key_shared", "quota_exhausted"]
    if (
        run.failed
        or passed != devices
        or replay != "fail"
        or not audit.ok
        or list(refusals.values()) != expected
    ):
        raise typer.Exit(code=1)


def _summary(
    root: Path,
    *,
    devices: int,
    good: int,
    failed: int,
    units_per_second: float,
    attested: int,
    replay: str,
    refusals: dict[str, str],
    audit_ok: bool,
    audit_rows: int,
    wall: float,
) -> None:
    table = Table(title="birthright demo", show_header=False)
    table.add_row("simulated devices", str(devices))
    table.add_row(
        "provisioned (key on chip → cert → stored → proven)", f"{good} ok, {failed} failed"
    )
    table.add_row("provisioning rate", f"{units_per_second:.1f} units/s")
    table.add_row("attested (signature, chain, status, nonce)", f"{attested}/{devices} pass")
    table.add_row("replayed nonce", "refused" if replay == "fail" else f"NOT refused ({replay})")
    for attempt, code in refusals.items():
        table.add_row(attempt, f"refused ({code})")
    table.add_row(
        "audit chain (hash-linked, signed head)",
        f"{audit_rows} events, {'intact' if audit_ok else 'BROKEN'}",
    )
    table.add_row("wall time", f"{wall:.1f} s")
    console.print(table)
    console.print(
        Panel(
            f"Workspace: {root}\n"
            f"  certificates  {root / 'certs'} (root.pem, issuing.pem, devices/<serial>.pem)\n"
            f"  database      {root / 'birthright.db'}\n"
            f"  logs          {root / 'logs'}\n"
            f"Explore it:     birthright serve --workspace {root}   (API docs at /docs)",
            title="output",
        )
    )
