"""`birthright demo`: a small production run, end to end, on embedded defaults."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console
from birthright.cli.device import attest_devices, device_client
from birthright.cli.station import run_provisioning
from birthright.demo.console import demo_operator_token
from birthright.demo.est_hook import HELD_BACK, est_with_policy_hook
from birthright.demo.fleet import reconcile, release_firmware, revoke_and_recall
from birthright.demo.fleet_auth import authenticate_and_claim
from birthright.demo.fleet_events import (
    operational_certificates,
    pushed_events,
    subscribe_receiver,
)
from birthright.demo.genuine import counterfeit_refused, require_genuine_chips
from birthright.demo.ops import observe
from birthright.demo.orders import (
    REWORK_ORDER_ID,
    WORK_ORDER_ID,
    free_port,
    open_work_orders,
)
from birthright.demo.sealing import sealed_secrets
from birthright.demo.service import ServiceProcess
from birthright.demo.showcase import (
    audit_intact,
    cloned_station_caught,
    export_certificates,
    over_quota_refused,
    replayed_nonce_refused,
    shared_key_refused,
)
from birthright.errors import ConfigError
from birthright.settings import load_settings, write_settings_file
from birthright.workspace import Workspace

STATION_ID = "site1-line1-st1"
EXPECTED_REFUSALS = [
    "key_shared",
    "quota_exhausted",
    "se_not_genuine",
    "se_not_genuine",
    "counter_fork",
]


def demo(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    devices: Annotated[int, typer.Option("--devices", "-n", min=3, max=2000)] = 25,
    reset: Annotated[
        bool, typer.Option(help="Delete an earlier demo workspace at the same path first.")
    ] = False,
) -> None:
    """Provision and attest a simulated production run; leaves everything in the workspace."""
    from birthright.ca.setup import init_workspace_pki
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.migrate import upgrade
    from birthright.db.operations import Operations
    from birthright.se.sim import create_devices, open_device_set, write_device_pin
    from birthright.station.connect import station_client
    from birthright.station.enroll_station import register_station_identity

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
    settings = load_settings(ws.root, port=free_port(), est=True)
    write_settings_file(settings, ("port", "organization", "product", "serial_prefix", "est"))
    root_pem = ws.ca_dir / "root.pem"
    station_dir = ws.root / "station"

    console.rule("[bold]1. Factory PKI")
    ca = init_workspace_pki(settings, now=datetime.now(UTC))
    console.print(f"root     {ca.root_cert.subject.rfc4514_string()}")
    console.print(f"issuing  {ca.issuing_cert.subject.rfc4514_string()} (device certificates)")
    console.print("station CA, service TLS certificate, audit signing key")

    tpms = max(1, devices // 5)
    console.rule(
        f"[bold]2. {devices} simulated secure elements: {devices - tpms} PKCS#11 tokens "
        f"(SoftHSM2), {tpms} TPM 2.0 (swtpm)"
    )
    pin = ws.secret("device-pin", create=True)
    t = time.perf_counter()
    create_devices(ws.devices_dir, devices - tpms, pin=pin)
    write_device_pin(ws.devices_dir, pin)
    device_set = open_device_set(ws.devices_dir, pin=pin)
    console.print(
        f"created {devices - tpms} tokens in {time.perf_counter() - t:.2f} s, each with an "
        "attestation key certified by the simulated chip vendor"
    )
    t = time.perf_counter()
    create_devices(ws.devices_dir, tpms, pin=pin, kind="tpm")
    console.print(
        f"manufactured {tpms} TPMs in {time.perf_counter() - t:.2f} s, each with an EK "
        "certificate from the simulated TPM maker"
    )

    console.rule("[bold]3. Identity service, work orders, station identity")
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    open_work_orders(settings, devices)
    vendor = require_genuine_chips(
        ws, sessions, devices_dir=ws.devices_dir, product=settings.product
    )
    console.print(f"{settings.product} requires genuine-chip proof; trusted chip makers: {vendor}")
    token = demo_operator_token(sessions)
    console.print("operator endpoints need a session or API token; the script uses a token")
    register_station_identity(
        settings,
        sessions,
        station_id=STATION_ID,
        site="site1",
        line="line1",
        station_dir=station_dir,
        softhsm_dir=ws.devices_dir,
        now=datetime.now(UTC),
    )
    console.print(f"station {STATION_ID}: key in its token, certificates from the station CA")
    status_url = f"http://127.0.0.1:{free_port()}"
    status_responder = ServiceProcess(
        ws,
        status_url,
        start_timeout=60.0,
        command=("serve-status", "--port", status_url.rsplit(":", 1)[1], "--workers", "2"),
    )
    with (
        ServiceProcess(ws, settings.effective_public_url, ca_file=root_pem) as service,
        status_responder,
    ):
        console.print(f"serving on {service.url}: mutual TLS, signed station requests")
        console.print(f"OCSP and CRL on {status_url} too: `birthright serve-status`, 2 workers")

        console.rule("[bold]4. Provisioning station")
        run = run_provisioning(
            devices=ws.devices_dir,
            server=service.url,
            station_dir=station_dir,
            work_order=WORK_ORDER_ID,
            journal=station_dir / "journal.db",
        )

        console.rule("[bold]5. Firmware releases and attestation")
        fw = release_firmware(ws.root, ws.devices_dir, product=settings.product)
        t = time.perf_counter()
        verdicts = attest_devices(
            devices=ws.devices_dir, server=service.url, pin=pin, ca_file=root_pem
        )
        attest_seconds = time.perf_counter() - t
        passed = sum(1 for _label, r in verdicts if r["verdict"] == "pass")
        quoted = sum(1 for _label, r in verdicts for c in r["checks"] if c["id"] == "quote.valid")
        blocked = dict(verdicts)[fw.blocked_label]
        blocked_ids = [c["id"] for c in blocked["checks"] if c["status"] != "pass"]
        console.print(
            f"{passed}/{len(verdicts)} devices attested ({fw.good_version}) in "
            f"{attest_seconds:.2f} s; {fw.blocked_label} runs blocked {fw.blocked_version}: "
            f"[bold]{blocked['verdict']}[/] {blocked_ids}"
        )
        console.print(f"{quoted} TPM unit(s) backed their firmware claim with a PCR quote")
        with device_client(service.url, root_pem) as device_side:
            replay = replayed_nonce_refused(device_set, device_side)
        console.print(f"the same signed evidence sent twice → second refused: [bold]{replay}[/]")
        sealed = sealed_secrets(
            device_set, service.url, root_pem, [x for x, _r in verdicts], token=token
        )
        console.print(
            f"a per-device Wi-Fi secret sealed by the backend, opened on chip by "
            f"{' and '.join(sealed.opened)} units; another unit → [bold]{sealed.other_unit}[/]"
        )

        console.rule("[bold]6. The factory is not trusted")
        with station_client(station_dir, service.url) as backend:
            refusals = {
                "one unit's key copied into a second unit": shared_key_refused(
                    device_set, backend, station_id=STATION_ID, work_order_id=REWORK_ORDER_ID
                ),
                "one unit more than the work order allows": over_quota_refused(
                    device_set, backend, station_id=STATION_ID, work_order_id=WORK_ORDER_ID
                ),
                "a counterfeit chip (no vendor attestation)": counterfeit_refused(
                    device_set, backend, station_id=STATION_ID, work_order_id=REWORK_ORDER_ID
                ),
                "a TPM from an untrusted maker (EK not vouched for)": counterfeit_refused(
                    device_set,
                    backend,
                    station_id=STATION_ID,
                    work_order_id=REWORK_ORDER_ID,
                    kind="tpm",
                ),
                "the station's state copied to a second PC": cloned_station_caught(
                    station_dir, service.url, backend, work_order_id=REWORK_ORDER_ID
                ),
            }
        for attempt, code in refusals.items():
            console.print(f"{attempt} → refused [bold]{code}[/]")

        console.rule("[bold]7. Revocation and recall")
        enrolled = Operations(sessions).devices()
        proven_by = Counter(d.se_proof for d in enrolled if d.se_proof)
        proven = sum(proven_by.values())
        receiver = subscribe_receiver(service.url, root_pem, token=token)
        revoked = revoke_and_recall(
            service.url, root_pem, ca.issuing_cert, enrolled, token=token, status_url=status_url
        )
        try:
            pushed = pushed_events(receiver, revoked.revoked_serial)
        finally:
            receiver.stop()
        label_of = {r["serial"]: label for label, r in verdicts}
        after = attest_devices(
            devices=ws.devices_dir,
            server=service.url,
            pin=pin,
            ca_file=root_pem,
            labels=[label_of[revoked.revoked_serial]],
        )[0][1]
        revoked_attests = after["verdict"]
        console.print(
            f"revoked {revoked.revoked_serial} (keyCompromise): OCSP says "
            f"{revoked.ocsp_status} (serve-status: {revoked.status_responder_says}), "
            f"CRL lists {revoked.crl_entries}, attestation now "
            f"[bold]{revoked_attests}[/]"
        )
        console.print(
            f"recall by serial range: preview {revoked.recall_previewed} unit(s), "
            f"executed {revoked.recall_executed} (certificateHold)"
        )
        console.print(
            f"a subscribed relying service got device.revoked for {pushed.revoked_serial} "
            f"{pushed.revoked_delay_ms:.0f} ms after the revocation (ES256-signed, verified), "
            f"and the recall's {pushed.recall_serials} serial(s) in {pushed.recall_events} event"
        )
        with device_client(service.url, root_pem) as device_backend:
            fleet = authenticate_and_claim(
                device_set, device_backend, revoked_label=label_of[revoked.revoked_serial]
            )
        console.print(
            f"device auth (chip-signed token): {fleet.authenticated} in, claims "
            f"{fleet.claim}; its serial read off the label → {fleet.stolen_label}; "
            f"revoked unit → [bold]{fleet.revoked}[/]"
        )
        ops = observe(service.url, root_pem)
        console.print(
            f"/readyz: [bold]{ops.ready}[/]; /metrics: {ops.requests} requests timed, "
            f"{ops.enrollments_issued} enrollments issued, refusals by code: "
            f"{ops.refusal_summary()}"
        )
        opcert = operational_certificates(
            device_set,
            service.url,
            root_pem,
            live_label={r["serial"]: x for x, r in verdicts}[fleet.authenticated],
            revoked_label=label_of[revoked.revoked_serial],
        )
        console.print(
            f"{opcert.serial} traded its factory identity for an operational certificate "
            f"({opcert.issuer}, until {opcert.not_after}); the revoked unit → "
            f"[bold]{opcert.revoked_refused}[/]"
        )

        console.rule("[bold]8. EST (RFC 7030) and a product's policy hook")
        est = est_with_policy_hook(settings, sessions, url=service.url, root_pem=root_pem)
        console.print(
            f"an EST client on the station's mutual TLS enrolled {', '.join(est.enrolled)}; "
            f"the hook of BR-HUB-1 refused serial …{HELD_BACK} → [bold]{est.refused}[/]"
        )
        console.print(
            f"EST simplereenroll: {est.reenrolled} got a new key, old certificate superseded"
        )
        est_units = [d for d in Operations(sessions).devices() if d.serial in est.enrolled]

    console.rule("[bold]9. Morning report: minted vs shipped vs chips delivered")
    recon = reconcile(ws.root, enrolled + est_units)
    console.print(
        f"vendor manifest: {recon.manifest_entries} signed chip entries verified; a tampered "
        f"copy {recon.tampered_refused}"
    )
    console.print(
        f"enrolled, never shipped: {recon.not_shipped}; shipped, never enrolled: "
        f"{recon.shipped_not_enrolled}; foreign chips: {recon.foreign_chips}"
    )

    console.rule("[bold]10. Certificates and audit")
    exported = export_certificates(Operations(sessions), ca, ws.certs_dir)
    console.print(f"exported {exported} device certificates to {ws.certs_dir}/devices/")
    audit = audit_intact(settings, sessions)
    alerts = Operations(sessions).alerts()
    engine.dispose()
    console.print(
        f"audit chain: {audit.rows_checked} events, {audit.checkpoints_verified} signed "
        f"checkpoint(s), {'intact' if audit.ok else 'BROKEN'}; {len(alerts)} security alert(s)"
    )

    table = Table(title="birthright demo", show_header=False)
    table.add_row(
        "simulated devices", f"{devices}: {devices - tpms} PKCS#11 (SoftHSM2), {tpms} TPM 2.0"
    )
    table.add_row(
        "provisioned (key on chip → cert → stored → proven)", f"{run.good} ok, {run.failed} failed"
    )
    table.add_row(
        "provisioning rate (mTLS + signed requests)", f"{run.units_per_second:.1f} units/s"
    )
    table.add_row(
        "genuine chip proven (vendor attestation / TPM EK + credential activation)",
        f"{proven}/{len(enrolled)} enrolled units ({proven_by['pkcs11-vendor']} PKCS#11, "
        f"{proven_by['tpm']} TPM); counterfeit → "
        f"{refusals['a counterfeit chip (no vendor attestation)']}",
    )
    table.add_row(
        "attested (EAT: signature, chain, status, nonce, firmware)",
        f"{passed}/{devices} pass; blocked firmware {fw.blocked_version} → "
        f"{blocked['verdict']} ({', '.join(blocked_ids)})",
    )
    table.add_row("TPM firmware quotes (PCR 0, nonce-bound)", f"{quoted}/{tpms} valid")
    table.add_row(
        "replayed evidence",
        "refused (nonce.replayed)" if replay == ["nonce.replayed"] else f"NOT refused {replay}",
    )
    table.add_row(
        "sealed per-device secret (HPKE, ECDH on chip)",
        f"opened by its unit ({', '.join(sealed.opened)}); another unit → {sealed.other_unit}",
    )
    for attempt, code in refusals.items():
        table.add_row(attempt, f"refused ({code})")
    table.add_row(
        "revoked unit (OCSP / serve-status OCSP / CRL / attestation)",
        f"{revoked.ocsp_status} / {revoked.status_responder_says} / {revoked.crl_entries} "
        f"listed / {revoked_attests}",
    )
    table.add_row(
        "device auth + warranty claim (chip-signed, challenge-bound token)",
        f"{fleet.authenticated or 'NONE'}: {fleet.claim}; claim from a stolen serial label → "
        f"{fleet.stolen_label}",
    )
    table.add_row("revoked device authenticating", f"refused ({fleet.revoked})")
    table.add_row(
        "revocation pushed to a subscriber (signed webhook, verified)",
        f"{pushed.revoked_serial} in {pushed.revoked_delay_ms:.0f} ms; recall: "
        f"{pushed.recall_serials} serial(s) in {pushed.recall_events} event",
    )
    table.add_row(
        "operational certificate (fresh chip proof in, short-lived cert out)",
        f"{opcert.serial} until {opcert.not_after}; revoked unit → {opcert.revoked_refused}",
    )
    table.add_row(
        "recall (preview → execute)",
        f"{revoked.recall_previewed} → {revoked.recall_executed} on hold",
    )
    table.add_row(
        "morning report exceptions (signed)",
        f"{len(recon.not_shipped)} not shipped, {len(recon.shipped_not_enrolled)} never "
        f"enrolled, {len(recon.foreign_chips)} foreign chip",
    )
    table.add_row("morning report (PDF, signed)", str(recon.pdf))
    table.add_row("tampered vendor chip manifest", recon.tampered_refused)
    table.add_row(
        "EST (RFC 7030) over station mTLS: enroll / re-enroll",
        f"{len(est.enrolled)} enrolled / {est.reenrolled} re-keyed",
    )
    table.add_row(
        "policy hook (signed answer, fails closed)", f"…{HELD_BACK} refused ({est.refused})"
    )
    table.add_row(
        "audit chain (hash-linked, signed head)",
        f"{audit.rows_checked} events, {'intact' if audit.ok else 'BROKEN'}",
    )
    table.add_row(
        "service /readyz, /metrics (JSON logs with request ids)",
        f"{ops.ready}; {ops.enrollments_issued} issued; refused {ops.refusal_summary(4)}",
    )
    table.add_row("security alerts raised", ", ".join(sorted({str(a["kind"]) for a in alerts})))
    table.add_row(
        "operator console (roles: admin, production_manager, auditor, line_operator)",
        f"{settings.effective_public_url}/console; no default password",
    )
    table.add_row("wall time", f"{time.perf_counter() - started:.1f} s")
    console.print(table)
    root = ws.root
    console.print(
        Panel(
            f"Workspace: {root}\n"
            f"  certificates  {root / 'certs'} (root.pem, issuing.pem, devices/<serial>.pem)\n"
            f"  database      {root / 'birthright.db'}\n"
            f"  station       {station_dir} (identity, counter, journal.db)\n"
            f"  report        {recon.report} (+ .json, .csv, .sig each)\n"
            f"  report (PDF)  {recon.pdf}\n"
            f"  logs          {root / 'logs'}\n"
            f"Explore it:     birthright serve --workspace {root}   (API docs at /docs)\n"
            f"                birthright audit verify --workspace {root}\n"
            f"Console:        {settings.effective_public_url}/console  (while serving; first "
            f"make your admin: birthright admin create NAME --workspace {root})",
            title="output",
        )
    )
    if (
        run.failed
        or proven != len(enrolled)
        or passed != devices - 1
        or blocked_ids != ["firmware.blocked"]
        or quoted != tpms
        or replay != ["nonce.replayed"]
        or not audit.ok
        or list(refusals.values()) != EXPECTED_REFUSALS
        or (revoked.ocsp_status, revoked.status_responder_says) != ("revoked", "revoked")
        or revoked_attests != "fail"
        or not fleet.authenticated
        or fleet.claim != "warranty-2y active"
        or fleet.revoked != "device_revoked"
        or not 0 <= pushed.revoked_delay_ms < 10_000
        or pushed.recall_serials != revoked.recall_executed
        or opcert.revoked_refused != "device_revoked"
        or fleet.stolen_label != "device_auth_signature_invalid"
        or revoked.recall_executed != min(2, devices - 1)
        or len(recon.not_shipped) != 1
        or recon.shipped_not_enrolled != ["BRS99999999"]
        or len(recon.foreign_chips) != 1
        or not recon.tampered_refused.startswith("refused")
        or ops.ready != "ready"
        or ops.enrollments_issued < run.good
        or not {"key_shared", "quota_exhausted", "se_not_genuine"} <= set(ops.refusals)
        or len(est.enrolled) != 2
        or not est.refused.startswith("policy_hook_refused")
    ):
        raise typer.Exit(code=1)
