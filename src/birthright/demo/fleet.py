"""Demo steps after the factory: revoke one unit, recall a set, reconcile against shipments."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from birthright.enrollment.model import DeviceRecord


@dataclass(frozen=True)
class RevocationShow:
    revoked_serial: str
    ocsp_status: str
    #: The same question to ``birthright serve-status`` (plain HTTP, its own workers).
    status_responder_says: str
    crl_entries: int
    recall_previewed: int
    recall_executed: int


def revoke_and_recall(
    server: str,
    root_pem: Path,
    issuing: x509.Certificate,
    devices: list[DeviceRecord],
    *,
    token: str,
    status_url: str,
) -> RevocationShow:
    """Revoke the first unit (key compromise), ask OCSP (the service's, and the status
    responder's at ``status_url``) and the CRL about it, then preview and execute a recall
    (certificate hold) of the next two units by serial range."""
    verify = ssl.create_default_context(cafile=str(root_pem))
    first, second, third = sorted(devices, key=lambda d: d.serial)[:3]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server, verify=verify, timeout=10, headers=auth) as http:
        http.post(
            "/v1/revocations", json={"serial": first.serial, "reason": "keyCompromise"}
        ).raise_for_status()
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(first.certificate, issuing, hashes.SHA1())  # noqa: S303 - RFC 6960 CertID
            .build()
        )
        answer = http.post(
            "/ocsp",
            content=request.public_bytes(Encoding.DER),
            headers={"content-type": "application/ocsp-request"},
        )
        status = ocsp.load_der_ocsp_response(answer.content).certificate_status.name.lower()
        plain = httpx.post(
            f"{status_url}/ocsp",
            content=request.public_bytes(Encoding.DER),
            headers={"content-type": "application/ocsp-request"},
            timeout=10,
        )
        responder = ocsp.load_der_ocsp_response(plain.content).certificate_status.name.lower()
        crl = x509.load_der_x509_crl(http.get("/crl/issuing.crl").content)
        preview = http.post(
            "/v1/recalls/preview",
            json={
                "selection": {"serial_first": second.serial, "serial_last": third.serial},
                "reason": "certificateHold",
            },
        )
        preview.raise_for_status()
        executed = http.post(f"/v1/recalls/{preview.json()['token']}/execute")
        executed.raise_for_status()
    return RevocationShow(
        revoked_serial=first.serial,
        ocsp_status=status,
        status_responder_says=responder,
        crl_entries=len(list(crl)),
        recall_previewed=int(preview.json()["count"]),
        recall_executed=int(executed.json()["revoked"]),
    )


@dataclass(frozen=True)
class ReconcileShow:
    report: Path
    pdf: Path
    not_shipped: list[str]
    shipped_not_enrolled: list[str]
    foreign_chips: list[str]
    manifest_entries: int
    tampered_refused: str


def reconcile(workspace: Path, devices: list[DeviceRecord]) -> ReconcileShow:
    """Logistics ships every unit but the last, plus one serial we never minted; the chip
    vendor's signed manifest lacks one chip. A tampered copy of the manifest is refused whole.
    The signed report (JSON, CSV, HTML, PDF) must name exactly those units."""
    from birthright.cli.reconcile import import_chips, import_shipments
    from birthright.cli.report import generate
    from birthright.demo.vendor import make_vendor
    from birthright.reconcile.microchip import ManifestSigner, parse_microchip_manifest
    from birthright.settings import load_settings

    units = sorted(devices, key=lambda d: d.serial)
    inbox = workspace / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    today = now.date().isoformat()
    shipments = inbox / "shipments.csv"
    rows: list[tuple[str, str]] = [(d.serial, d.work_order_id or "") for d in units[:-1]]
    rows.append(("BRS99999999", units[0].work_order_id or ""))
    shipments.write_text(
        "serial,work_order,ship_date,carton,pallet,destination\n"
        + "".join(f"{s},{wo},{today},CTN-1,PAL-1,Rotterdam\n" for s, wo in rows)
    )
    vendor = make_vendor(now)
    signer = inbox / "vendor-manifest-signer.pem"
    signer.write_bytes(vendor.certificate_pem)
    entries = [vendor.entry(d.chip_id) for d in units[1:]]
    manifest = inbox / "chips-manifest.json"
    manifest.write_text(json.dumps(entries, indent=1))
    tampered = inbox / "chips-manifest-tampered.json"
    forged = [*entries, {**entries[0], "header": {"uniqueId": units[0].chip_id}}]
    forged[-1]["payload"] = entries[-1]["payload"][:-4] + "AAAA"
    tampered.write_text(json.dumps(forged, indent=1))
    trusted = ManifestSigner.from_pem(vendor.certificate_pem)
    with tampered.open("rb") as f:
        found = parse_microchip_manifest(f, trusted, delivered_at=now).errors
    try:  # the import refuses the whole file and audits the refusal
        import_chips(file=tampered, microchip=True, signer=signer, workspace=workspace)
        refused = "NOT refused"
    except typer.Exit:
        refused = "refused whole: " + ", ".join(f"entry {e.entry} {e.code}" for e in found)
    import_chips(file=manifest, microchip=True, signer=signer, workspace=workspace)
    import_shipments(file=shipments, workspace=workspace)
    settings = load_settings(workspace)
    report, paths = generate(settings, None, ["json", "csv", "html", "pdf"], None, "demo")

    def serials(kind: str) -> list[str]:
        return sorted(e.serial for e in report.exceptions.get(kind, ()))

    return ReconcileShow(
        report=paths["html"],
        pdf=paths["pdf"],
        not_shipped=serials("enrolled_not_shipped"),
        shipped_not_enrolled=serials("shipped_not_enrolled"),
        foreign_chips=sorted(e.detail for e in report.exceptions.get("foreign_chip", ())),
        manifest_entries=len(entries),
        tampered_refused=refused,
    )


@dataclass(frozen=True)
class FirmwareShow:
    good_version: str
    blocked_version: str
    blocked_label: str


def release_firmware(workspace: Path, devices_dir: Path, *, product: str) -> FirmwareShow:
    """Sign and publish two releases with the release key, block the older one (a known
    vulnerability), and have the last simulated device still run it."""
    from birthright.attest.firmware import image_digest
    from birthright.cli.firmware import block, publish, sign
    from birthright.device.agent import FIRMWARE_FILE
    from birthright.se.sim import list_devices

    releases = workspace / "firmware"
    releases.mkdir(parents=True, exist_ok=True)
    running: dict[str, dict[str, str]] = {}
    versions = {"1.4.0": 3, "1.3.9": 2}
    for version, security_version in versions.items():
        image = releases / f"{product}-{version}.bin"
        image.write_bytes(f"{product} firmware {version}\n".encode() * 64)
        sign(
            image=image,
            product=product,
            version=version,
            security_version=security_version,
            workspace=workspace,
        )
        publish(manifest=image.with_name(image.name + ".manifest.json"), workspace=workspace)
        running[version] = {"version": version, "image_sha256": image_digest(image.read_bytes())}
    block(product, "1.3.9", reason="CVE-2026-0001: debug port left open", workspace=workspace)
    labels = [d.label for d in list_devices(devices_dir)]
    per_device = {label: running["1.4.0"] for label in labels[:-1]}
    per_device[labels[-1]] = running["1.3.9"]
    (devices_dir / FIRMWARE_FILE).write_text(json.dumps(per_device, indent=2))
    return FirmwareShow("1.4.0", "1.3.9", labels[-1])
