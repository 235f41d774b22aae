"""A station provisions real SoftHSM2 chips through the real service; devices then attest."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select, text

from birthright.db.models import DeviceRow
from birthright.device.agent import attest
from birthright.se.sim import DeviceSet, create_devices
from birthright.station.client import BackendClient
from birthright.station.provision import Station
from tests.conftest import ServedBackend, seed_line
from tests.leakscan import scan_bytes, scan_tree

STATION = "st-e2e"
WO = "WO-E2E"
_labels = itertools.count(1000, 10)


@pytest.fixture
def chips(sim_device_set: DeviceSet) -> list[str]:
    """Three fresh chips in this process's one SoftHSM2 configuration."""
    made = create_devices(
        sim_device_set.directory, 3, pin=sim_device_set.pin, start_index=next(_labels)
    )
    return [d.label for d in made]


@pytest.fixture
def backend(served: ServedBackend) -> Iterator[BackendClient]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with BackendClient(served.url) as client:
        yield client


def device_count(served: ServedBackend) -> int:
    with served.backend.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DeviceRow)).scalar_one())


def test_station_provisions_each_chip_and_each_device_attests(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet, chips: list[str]
) -> None:
    station = Station(station_id=STATION, work_order_id=WO, backend=backend)
    for label in chips:
        with sim_device_set.open(label) as se:
            outcome = station.provision(se, label=label)
            assert outcome.ok, outcome.reason
            assert outcome.action == "enrolled"
            chain = se.read_chain()
            assert len(chain) == 3
            assert chain[0].public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            ) == se.identity_public_key().public_bytes(  # type: ignore[union-attr]
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
            record = served.backend.operations.device(outcome.serial)
            assert record is not None and record.chip_id == se.chip_id
            verdict = attest(se, backend, now=datetime.now(UTC))
            assert verdict["verdict"] == "pass", verdict
    assert device_count(served) == 3


def test_running_the_station_again_enrolls_nothing_twice(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet, chips: list[str]
) -> None:
    station = Station(station_id=STATION, work_order_id=WO, backend=backend)
    first = []
    for label in chips:
        with sim_device_set.open(label) as se:
            first.append(station.provision(se, label=label))
    for label, before in zip(chips, first, strict=True):
        with sim_device_set.open(label) as se:
            again = station.provision(se, label=label)
        assert (again.ok, again.action, again.serial) == (True, "already", before.serial)
    assert device_count(served) == 3


def test_a_unit_interrupted_after_keygen_is_finished_with_the_same_key(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet, chips: list[str]
) -> None:
    label = chips[0]
    with sim_device_set.open(label) as se:
        # The station died after reserving a serial and generating the key on chip.
        serial = backend.reserve_serial(station_id=STATION, work_order_id=WO, chip_id=se.chip_id)
        key = se.generate_identity_key()
    with sim_device_set.open(label) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=label
        )
        assert (outcome.ok, outcome.action, outcome.serial) == (True, "resumed", serial)
        assert se.identity_public_key() == key
    assert device_count(served) == 1


def test_a_unit_interrupted_after_enrollment_gets_the_same_certificate(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet, chips: list[str]
) -> None:
    from birthright.station.provision import build_csr

    label = chips[0]
    with sim_device_set.open(label) as se:
        serial = backend.reserve_serial(station_id=STATION, work_order_id=WO, chip_id=se.chip_id)
        se.generate_identity_key()
        enrolled = backend.enroll(
            station_id=STATION,
            work_order_id=WO,
            serial=serial,
            chip_id=se.chip_id,
            csr_der=build_csr(se, serial=serial),
        )
        # ...and died before writing the certificate into the chip.
    with sim_device_set.open(label) as se:
        outcome = Station(station_id=STATION, work_order_id=WO, backend=backend).provision(
            se, label=label
        )
        assert (outcome.ok, outcome.action) == (True, "resumed")
        assert se.read_chain()[0] == enrolled.certificate
    assert device_count(served) == 1


def test_an_unreachable_backend_fails_the_unit_with_a_clear_reason(
    sim_device_set: DeviceSet, chips: list[str]
) -> None:
    with (
        BackendClient("http://127.0.0.1:9", timeout=1) as dead,
        sim_device_set.open(chips[0]) as se,
    ):
        outcome = Station(station_id=STATION, work_order_id=WO, backend=dead).provision(
            se, label=chips[0]
        )
        assert not outcome.ok
        assert outcome.code == "backend_unavailable"
        assert se.identity_public_key() is None


def test_no_private_key_material_in_database_logs_or_workspace(
    served: ServedBackend,
    backend: BackendClient,
    sim_device_set: DeviceSet,
    chips: list[str],
    settings: object,
) -> None:
    station = Station(station_id=STATION, work_order_id=WO, backend=backend)
    for label in chips:
        with sim_device_set.open(label) as se:
            assert station.provision(se, label=label).ok
    ws = settings.ws  # type: ignore[attr-defined]
    secrets = [sim_device_set.pin, ws.secret("ca-passphrase")]
    leaks = scan_tree(ws.root, secrets, skip=[ws.secrets_dir])
    assert leaks == {}
    # The database (SQLite file or PostgreSQL rows) holds no key material or secrets either.
    with served.backend.engine.connect() as conn:
        blob = b"".join(
            v if isinstance(v, bytes) else str(v).encode()
            for table in ("devices", "audit_events", "serial_reservations", "attestations")
            for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            for v in row
        )
    assert scan_bytes(blob, secrets) == []
