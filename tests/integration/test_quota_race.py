"""The work-order cap holds with many stations and two service processes on one PostgreSQL."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from birthright.ca.authority import init_workspace_ca
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.operations import Operations, WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from birthright.settings import Settings, load_settings, write_settings_file
from tests.conftest import free_port

QUANTITY = 20
STATIONS = 60
WO = "WO-RACE"

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_url: str) -> Settings:
    settings = load_settings(
        tmp_path / "ws", database_url=postgres_url, tls=False, station_auth=False
    )
    settings.ws.create()
    write_settings_file(settings, ("database_url", "tls", "station_auth"))
    return settings


@pytest.fixture
def two_services(pg_settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    now = datetime.now(UTC)
    init_workspace_ca(pg_settings, now=now)
    engine = make_engine(pg_settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    for i in range(STATIONS):
        Operations(sessions).register_station(f"st-{i:02d}", site="s1", line="l1", now=now)
    WorkOrders(sessions).open(
        WorkOrderSpec(
            WO,
            "P1",
            "s1",
            "l1",
            QUANTITY,
            "R",
            1,
            1000,
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    engine.dispose()
    procs, urls = [], []
    for n in range(2):
        port = free_port()
        log = (tmp_path / f"serve-{n}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "birthright.cli.main",
                    "serve",
                    "-w",
                    str(pg_settings.workspace),
                    "--port",
                    str(port),
                    "--no-migrate",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service at {url} did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(Encoding.DER)).decode()


def _station(i: int, url: str) -> tuple[int, str]:
    station, chip = f"st-{i:02d}", f"RACE-CHIP-{i:02d}"
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(
            "/v1/serials", json={"station_id": station, "work_order_id": WO, "chip_id": chip}
        )
        if r.status_code != 200:
            return r.status_code, r.json()["code"]
        r = http.post(
            "/v1/enrollments",
            json={
                "station_id": station,
                "work_order_id": WO,
                "serial": r.json()["serial"],
                "chip_id": chip,
                "csr": _csr(ec.generate_private_key(ec.SECP256R1())),
            },
        )
        return r.status_code, r.json().get("code", "issued")


def test_concurrent_stations_on_two_processes_never_exceed_the_cap(
    two_services: list[str], pg_settings: Settings
) -> None:
    with ThreadPoolExecutor(max_workers=STATIONS) as pool:
        results = list(pool.map(lambda i: _station(i, two_services[i % 2]), range(STATIONS)))
    outcomes = Counter(code for _status, code in results)
    assert outcomes["issued"] == QUANTITY, outcomes
    assert outcomes["quota_exhausted"] == STATIONS - QUANTITY, outcomes
    engine = make_engine(pg_settings.effective_database_url)
    with engine.connect() as conn:
        minted = conn.execute(text("SELECT minted FROM work_orders")).scalar_one()
        devices = conn.execute(text("SELECT count(*) FROM devices")).scalar_one()
        serials = conn.execute(text("SELECT count(DISTINCT serial) FROM devices")).scalar_one()
    engine.dispose()
    assert (minted, devices, serials) == (QUANTITY, QUANTITY, QUANTITY)
