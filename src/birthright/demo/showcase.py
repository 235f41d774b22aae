"""Demo steps that show a defence holding or write the run's output."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.verify import ChainReport
from birthright.ca.authority import FactoryCa
from birthright.db.operations import Operations
from birthright.device.agent import device_serial
from birthright.se.sim import DeviceSet
from birthright.settings import Settings
from birthright.station.client import BackendClient


def replayed_nonce_refused(device_set: DeviceSet, backend: BackendClient) -> list[str]:
    """Attest the first device, then send the very same signed EAT again: the checks that
    fail on the second try (``nonce.replayed`` is the one that must)."""
    from birthright.attest.eat import EatClaims, build_eat
    from birthright.device.agent import read_firmware_file

    first = device_set.devices()[0].label
    with device_set.open(first) as se:
        serial = device_serial(se)
        running = read_firmware_file(device_set.directory, first)
        if running is None:
            return ["no firmware description for the device"]
        claims = EatClaims(
            nonce=backend.challenge(serial),
            serial=serial,
            firmware_version=running.version,
            firmware_sha256=running.sha256,
            issued_at=datetime.now(UTC),
        )
        evidence = build_eat(claims, se.sign)
        chain = [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]
    backend.attest(evidence=evidence, chain_pem=chain)
    again = backend.attest(evidence=evidence, chain_pem=chain)
    return [c["id"] for c in again["checks"] if c["status"] != "pass"]


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


def cloned_station_caught(
    station_dir: Path, server: str, backend: BackendClient, *, work_order_id: str
) -> str:
    """Copy the station's whole state (config, certificates, TLS key, counter) to another
    folder and use both: the second request with the same counter is a fork."""
    from birthright.station.client import BackendUntrusting
    from birthright.station.connect import station_client

    clone_dir = station_dir.with_name(station_dir.name + "-clone")
    shutil.rmtree(clone_dir, ignore_errors=True)
    shutil.copytree(station_dir, clone_dir)
    station_id = backend_station_id(station_dir)
    with station_client(clone_dir, server) as clone:
        clone.reserve_serial(
            station_id=station_id, work_order_id=work_order_id, chip_id="CLONE-GHOST-1"
        )
    try:
        backend.reserve_serial(
            station_id=station_id, work_order_id=work_order_id, chip_id="REAL-NEXT-1"
        )
    except BackendUntrusting as e:
        return e.code
    finally:
        shutil.rmtree(clone_dir, ignore_errors=True)
    return "accepted"


def backend_station_id(station_dir: Path) -> str:
    from birthright.station.identity import load_station_config

    return load_station_config(station_dir).station_id
