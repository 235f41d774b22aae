"""Demo steps that show a defence holding or write the run's output."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.evidence import build_evidence
from birthright.audit.verify import ChainReport
from birthright.ca.authority import FactoryCa
from birthright.db.operations import Operations
from birthright.device.agent import device_serial
from birthright.se.sim import DeviceSet
from birthright.settings import Settings
from birthright.station.client import BackendClient


def replayed_nonce_refused(devices: Path, server: str, *, pin: str) -> str:
    """Attest the first device twice with the same signed evidence; return the 2nd verdict."""
    from birthright.se.sim import open_device_set

    device_set = open_device_set(devices, pin=pin)
    first = device_set.devices()[0].label
    with device_set.open(first) as se, BackendClient(server) as backend:
        serial = device_serial(se)
        evidence = build_evidence(
            nonce=backend.challenge(serial), serial=serial, now=datetime.now(UTC)
        )
        body = {
            "evidence": base64.b64encode(evidence).decode(),
            "signature": base64.b64encode(se.sign(evidence)).decode(),
            "chain": [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()],
        }
    httpx.post(f"{server}/v1/attestations", json=body, timeout=10).raise_for_status()
    second = httpx.post(f"{server}/v1/attestations", json=body, timeout=10).json()
    return str(second["verdict"])


def export_certificates(ops: Operations, ca: FactoryCa, certs_dir: Path) -> int:
    devices_dir = certs_dir / "devices"
    devices_dir.mkdir(parents=True, exist_ok=True)
    (certs_dir / "root.pem").write_bytes(ca.root_cert.public_bytes(Encoding.PEM))
    (certs_dir / "issuing.pem").write_bytes(ca.issuing_cert.public_bytes(Encoding.PEM))
    count = 0
    for device in ops.devices(limit=1_000_000):
        (devices_dir / f"{device.serial}.pem").write_bytes(
            device.certificate.public_bytes(Encoding.PEM)
        )
        count += 1
    return count


def audit_intact(settings: Settings, sessions: sessionmaker[Session]) -> ChainReport:
    """Sign the chain head now, then walk the whole chain as ``birthright audit verify`` does."""
    from birthright.audit.signing import load_or_create_audit_signer
    from birthright.db.audit import verify_audit_log, write_checkpoint

    signer = load_or_create_audit_signer(settings)
    write_checkpoint(sessions, signer, datetime.now(UTC))
    return verify_audit_log(sessions, signer.public_key)


def shared_key_refused(
    device_set: DeviceSet, backend: BackendClient, *, station_id: str, work_order_id: str
) -> str:
    """A factory copies one unit's key into a second unit: the backend must refuse it."""
    from birthright.station.client import BackendRefused
    from birthright.station.provision import build_csr

    first = device_set.devices()[0].label
    with device_set.open(first) as se:
        ghost_chip = f"GHOST-{se.chip_id}"
        serial = backend.reserve_serial(
            station_id=station_id, work_order_id=work_order_id, chip_id=ghost_chip
        )
        csr = build_csr(se, serial=serial)
    try:
        backend.enroll(
            station_id=station_id,
            work_order_id=work_order_id,
            serial=serial,
            chip_id=ghost_chip,
            csr_der=csr,
        )
    except BackendRefused as e:
        return e.code
    return "issued"


def over_quota_refused(
    device_set: DeviceSet, backend: BackendClient, *, station_id: str, work_order_id: str
) -> str:
    """One unit more than the work order allows: refused before a key is even made."""
    from birthright.se.sim import create_devices
    from birthright.station.provision import Station

    extra = create_devices(device_set.directory, 1, pin=device_set.pin)[0]
    with device_set.open(extra.label) as se:
        outcome = Station(
            station_id=station_id, work_order_id=work_order_id, backend=backend
        ).provision(se, label=extra.label)
        keyless = se.identity_public_key() is None
    return outcome.code if keyless else f"{outcome.code} (but a key was generated)"
