"""Demo: a standard EST client enrolls units of a second product, whose self-hosted policy
hook refuses one serial; the station then re-enrolls a unit with a new key over EST."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session, sessionmaker

from birthright.db.operations import WorkOrders
from birthright.db.policy_hooks import SqlPolicyHooks
from birthright.enrollment.model import WorkOrderSpec
from birthright.est.client import EstClient, EstRefused
from birthright.policyhook.reference import ReferenceHook
from birthright.settings import Settings
from birthright.station.enroll_station import register_station_identity
from birthright.station.identity import station_ssl_context

EST_PRODUCT = "BR-HUB-1"
EST_WORK_ORDER = "WO-EST-1"
HELD_BACK = "00000002"
EST_STATION = "site1-line1-est1"


@dataclass(frozen=True)
class EstShow:
    enrolled: list[str]
    refused: str
    reenrolled: str


def _csr(key: ec.EllipticCurvePrivateKey, attr: x509.NameAttribute[str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([attr]))
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def est_with_policy_hook(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    url: str,
    root_pem: Path,
    units: int = 3,
) -> EstShow:
    """A second station of the line (the first was suspended by the clone test) speaks EST."""
    now = datetime.now(UTC)
    station_dir = settings.ws.root / "station-est"
    register_station_identity(
        settings,
        sessions,
        station_id=EST_STATION,
        site="site1",
        line="line1",
        station_dir=station_dir,
        softhsm_dir=settings.ws.devices_dir,
        now=now,
    )
    serial_prefix = settings.serial_prefix
    WorkOrders(sessions).open(
        WorkOrderSpec(
            EST_WORK_ORDER,
            EST_PRODUCT,
            "site1",
            "line1",
            units,
            serial_prefix + "E",
            1,
            units * 2,
            now,
            now + timedelta(days=30),
        ),
        now=now,
    )
    hook = ReferenceHook(
        ec.generate_private_key(ec.SECP256R1()),
        refuse_serials=f"{HELD_BACK}$",
        reason=f"serials ending {HELD_BACK} are kept as golden samples",
    ).start()
    public = hook.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    SqlPolicyHooks(sessions).set(
        EST_PRODUCT, url=hook.url, public_key_pem=public, timeout_ms=500, now=now
    )
    enrolled: list[str] = []
    refused = "NOT refused"
    try:
        with EstClient(url, context=station_ssl_context(station_dir, root_pem)) as est:
            for i in range(1, units + 1):
                chip = f"01EE{i:014X}"
                key = ec.generate_private_key(ec.SECP256R1())
                try:
                    cert = est.simpleenroll(
                        EST_WORK_ORDER, _csr(key, x509.NameAttribute(NameOID.COMMON_NAME, chip))
                    )
                except EstRefused as e:
                    refused = f"{e.code}: {e.message.split(': ', 1)[-1]}"
                    continue
                enrolled.append(_serial(cert))
            renewed = est.simplereenroll(
                _csr(
                    ec.generate_private_key(ec.SECP256R1()),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, enrolled[0]),
                )
            )
    finally:
        hook.stop()
    return EstShow(enrolled, refused, _serial(renewed))


def _serial(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value)
