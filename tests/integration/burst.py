"""Bursts of enrollments from many simulated stations, and the invariants that must hold after
any fault: each chip at most one identity, each serial at most one certificate, quotas
counted exactly, every acknowledged certificate recorded as issued, the audit chain intact.

Stations speak plain HTTP with software-key CSRs (made ahead of time): what is under test is
the service and its database, not the secure element.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, text

from birthright.db.audit import verify_audit_log
from birthright.db.engine import make_sessionmaker
from birthright.db.operations import Operations, WorkOrders
from birthright.enrollment.model import WorkOrderSpec

#: What a client may be told while the service or its database is being hurt.
TRANSIENT = frozenset({"db_unavailable", "rate_limited", "transport", "internal_error"})


def new_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A software key (standing in for the chip's) and its CSR, base64 DER."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit")])
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return key, base64.b64encode(csr.public_bytes(Encoding.DER)).decode()


def seed(engine: Engine, *, stations: int, work_order: str, quantity: int) -> list[str]:
    """Register ``stations`` stations on one line and open ``work_order`` for it."""
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    ids = [f"st-{i:03d}" for i in range(stations)]
    for station in ids:
        Operations(sessions).register_station(station, site="s1", line="l1", now=now)
    WorkOrders(sessions).open(
        WorkOrderSpec(
            work_order,
            "P1",
            "s1",
            "l1",
            quantity,
            "R",
            1,
            quantity * 10,
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    return ids


@dataclass
class Outcome:
    """What one station was told for one unit, attempt by attempt."""

    chip: str
    codes: list[str] = field(default_factory=list)
    serial: str | None = None
    certificate: str | None = None
    chain: list[str] = field(default_factory=list)
    key: ec.EllipticCurvePrivateKey | None = None
    latency: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return self.certificate is not None


def _call(http: httpx.Client, path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    try:
        r = http.post(path, json=body)
    except httpx.HTTPError:
        return 0, {"code": "transport"}
    try:
        answer = r.json()
    except ValueError:
        answer = {"code": f"not_json_{r.status_code}"}
    return r.status_code, answer if isinstance(answer, dict) else {"code": "not_an_object"}


def enroll_unit(
    http: httpx.Client,
    *,
    station: str,
    work_order: str,
    outcome: Outcome,
    csr: str,
    check: Callable[[int, dict[str, object]], None],
) -> bool:
    """One attempt at one unit (reserve, then enroll); True once the unit is settled (issued or
    finally refused). ``check`` sees every answer (to assert the error contract)."""
    start = time.perf_counter()
    status, body = _call(
        http,
        "/v1/serials",
        {"station_id": station, "work_order_id": work_order, "chip_id": outcome.chip},
    )
    check(status, body)
    if status == 200:
        outcome.serial = str(body["serial"])
        status, body = _call(
            http,
            "/v1/enrollments",
            {
                "station_id": station,
                "work_order_id": work_order,
                "serial": outcome.serial,
                "chip_id": outcome.chip,
                "csr": csr,
            },
        )
        check(status, body)
    outcome.latency = time.perf_counter() - start
    if status in (200, 201):
        outcome.certificate = str(body["certificate"])
        chain = body.get("chain")
        outcome.chain = [str(c) for c in chain] if isinstance(chain, list) else []
        outcome.codes.append("issued")
        return True
    code = str(body.get("code", "?"))
    outcome.codes.append(code)
    return code not in TRANSIENT


def run_station(
    url: str,
    *,
    station: str,
    work_order: str,
    units: int,
    check: Callable[[int, dict[str, object]], None],
    until: threading.Event | None = None,
    retry_pause: float = 0.05,
) -> list[Outcome]:
    """A station working through ``units`` chips, retrying each until it is settled (as a real
    station does: the same chip, the same CSR, so retries are idempotent)."""
    outcomes = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for n in range(units):
            key, csr = new_csr()
            outcome = Outcome(chip=f"{station}-chip-{n:04d}", key=key)
            deadline = time.monotonic() + 120
            while not enroll_unit(
                http, station=station, work_order=work_order, outcome=outcome, csr=csr, check=check
            ):
                if time.monotonic() > deadline:
                    break
                time.sleep(retry_pause)
            outcomes.append(outcome)
            if until is not None and until.is_set():
                break
    return outcomes


def check_invariants(
    engine: Engine,
    outcomes: list[Outcome],
    *,
    cap: int,
    audit_key: ec.EllipticCurvePublicKey | None = None,
) -> dict[str, int]:
    """The invariants after any fault; returns the counts it checked."""
    with engine.connect() as conn:
        devices = conn.execute(text("SELECT chip_id, serial, cert_der FROM devices"))
        rows = [(str(c), str(s), bytes(d)) for c, s, d in devices]
        minted = int(conn.execute(text("SELECT sum(minted) FROM work_orders")).scalar_one())
    chips = [c for c, _s, _p in rows]
    serials = [s for _c, s, _p in rows]
    assert len(set(chips)) == len(chips), "a chip has two identities"
    assert len(set(serials)) == len(serials), "a serial has two certificates"
    assert minted == len(rows), f"quota counted {minted} for {len(rows)} devices"
    assert minted <= cap, f"work order overrun: {minted} > {cap}"
    issued = {c: p for c, _s, p in rows}
    for o in outcomes:
        if o.acknowledged:
            assert o.chip in issued, f"{o.chip} was acknowledged but is not recorded"
            assert _same_cert(issued[o.chip], o.certificate or ""), f"{o.chip}: another cert"
    report = verify_audit_log(make_sessionmaker(engine), audit_key)
    assert report.ok, report
    return {"devices": len(rows), "minted": minted}


def _same_cert(der: bytes, pem: str) -> bool:
    return x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(pem.encode())
