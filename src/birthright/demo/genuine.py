"""Demo steps for genuine-chip proof: trust the chip vendor, require the proof, catch a fake."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from sqlalchemy.orm import Session, sessionmaker

from birthright.ca.se_vendors import trust_se_vendor
from birthright.db.products import SqlProductPolicies, audit_operator_action
from birthright.se.sim import DeviceSet, create_devices
from birthright.se.swtpm import tpm_vendor_root_file
from birthright.se.vendor import vendor_root_file
from birthright.station.client import BackendClient
from birthright.station.provision import Station
from birthright.workspace import Workspace


def require_genuine_chips(
    ws: Workspace, sessions: sessionmaker[Session], *, devices_dir: Path, product: str
) -> str:
    """As the operator: trust the chip vendor's root and require the proof for ``product``
    (before the service starts: it reads vendor roots once). Returns the vendor's name."""
    now = datetime.now(UTC)
    names = []
    for root in (vendor_root_file(devices_dir), tpm_vendor_root_file(devices_dir)):
        if not root.exists():
            continue
        cert, _path, added = trust_se_vendor(ws, root.read_bytes())
        if added:
            audit_operator_action(
                sessions,
                "se_vendor.trusted",
                {
                    "subject": cert.subject.rfc4514_string(),
                    "sha256": cert.fingerprint(hashes.SHA256()).hex(),
                },
                now=now,
            )
        names.append(cert.subject.rfc4514_string())
    SqlProductPolicies(sessions).set_require_genuine_se(product, True, now=now)
    return "; ".join(names)


def counterfeit_refused(
    device_set: DeviceSet,
    backend: BackendClient,
    *,
    station_id: str,
    work_order_id: str,
    kind: str = "pkcs11",
) -> str:
    """A part without vendor attestation (a counterfeit, or a software key) slipped onto the
    line: its key is made and its CSR is valid, but it cannot prove it is genuine. For
    ``kind="tpm"``: a TPM whose EK certificate comes from a maker nobody trusts."""
    fake = create_devices(
        device_set.directory, 1, pin=device_set.pin, vendor_attestation=False, kind=kind
    )[0]
    with device_set.open(fake.label) as se:
        outcome = Station(
            station_id=station_id, work_order_id=work_order_id, backend=backend
        ).provision(se, label=fake.label)
    return "issued" if outcome.ok else outcome.code
