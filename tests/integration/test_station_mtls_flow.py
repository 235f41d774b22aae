"""The production path: a registered station provisions real chips through the real enrollment
routes over mutual TLS, every request signed by the station's token key (SQLite, PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from birthright.ca.setup import init_workspace_pki
from birthright.ca.station import server_tls_files
from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from birthright.se.sim import DeviceSet, create_devices
from birthright.server.backend import Backend, build_backend
from birthright.server.tls import mtls_uvicorn_options
from birthright.settings import Settings, load_settings
from birthright.station.client import BackendUntrusting
from birthright.station.connect import station_client
from birthright.station.enroll_station import register_station_identity
from birthright.station.identity import station_ssl_context
from birthright.station.provision import Station
from tests.conftest import ThreadServer, free_port

WO = "WO-MTLS"
_ids = itertools.count(1)


@dataclass
class Line:
    backend: Backend
    url: str
    settings: Settings
    station_dir: Path
    station_id: str
    other_station_id: str


@pytest.fixture
def line(
    tmp_path: Path, database_url: str, softhsm_dir: Path, sim_device_set: DeviceSet
) -> Iterator[Line]:
    settings = load_settings(tmp_path / "ws", database_url=database_url, port=free_port())
    assert settings.tls and settings.station_auth  # the defaults are the secure ones
    settings.ws.create()
    now = datetime.now(UTC)
    init_workspace_pki(settings, now=now)
    backend = build_backend(settings)
    n = next(_ids)
    station_id, other = f"mtls-{n}", f"mtls-other-{n}"
    station_dir = tmp_path / "station"
    for sid, sdir in ((station_id, station_dir), (other, tmp_path / "other")):
        register_station_identity(
            settings,
            backend.sessions,
            station_id=sid,
            site="s1",
            line="l1",
            station_dir=sdir,
            softhsm_dir=softhsm_dir,
            now=now,
        )
    WorkOrders(backend.sessions).open(
        WorkOrderSpec(
            WO,
            "P",
            "s1",
            "l1",
            10,
            "M",
            1,
            100,
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    server = ThreadServer(
        backend, settings.port, **mtls_uvicorn_options(server_tls_files(settings.ws))
    )
    server.start()
    try:
        yield Line(
            backend, f"https://127.0.0.1:{settings.port}", settings, station_dir, station_id, other
        )
    finally:
        server.stop()
        backend.close()


def test_a_registered_station_provisions_chips_over_mtls_with_signed_requests(
    line: Line, sim_device_set: DeviceSet
) -> None:
    chips = create_devices(sim_device_set.directory, 2, pin=sim_device_set.pin)
    with station_client(line.station_dir, line.url) as client:
        station = Station(station_id=line.station_id, work_order_id=WO, backend=client)
        for chip in chips:
            with sim_device_set.open(chip.label) as se:
                outcome = station.provision(se, label=chip.label)
            assert outcome.ok, outcome.reason
            device = line.backend.operations.device(outcome.serial)
            assert device is not None
            assert device.station_id == line.station_id


def test_a_station_cannot_act_for_another_station(line: Line) -> None:
    with (
        station_client(line.station_dir, line.url) as client,
        pytest.raises(BackendUntrusting) as caught,
    ):
        client.reserve_serial(station_id=line.other_station_id, work_order_id=WO, chip_id="X1")
    assert caught.value.code == "station_mismatch"


def test_an_unsigned_request_with_a_valid_client_certificate_is_refused(line: Line) -> None:
    context = station_ssl_context(line.station_dir, line.settings.ws.ca_dir / "root.pem")
    with httpx.Client(base_url=line.url, verify=context, timeout=10) as http:
        r = http.post(
            "/v1/serials",
            json={"station_id": line.station_id, "work_order_id": WO, "chip_id": "X2"},
        )
    assert (r.status_code, r.json()["code"]) == (403, "signature_missing")


def test_no_client_certificate_is_refused_on_the_enrollment_routes(line: Line) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(line.settings.ws.ca_dir / "root.pem"))
    with httpx.Client(base_url=line.url, verify=context, timeout=10) as http:
        r = http.post(
            "/v1/serials",
            json={"station_id": line.station_id, "work_order_id": WO, "chip_id": "X3"},
        )
        health = http.get("/healthz")
    assert (r.status_code, r.json()["code"]) == (403, "client_cert_required")
    assert health.status_code == 200  # devices and monitors need no station certificate
