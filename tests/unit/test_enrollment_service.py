"""Enrollment decisions, against in-memory fakes of the store and issuer ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.enrollment.model import EnrollmentRequest, EnrollmentResult, Station, WorkOrder
from birthright.enrollment.service import EnrollmentService
from birthright.errors import InputError, TrustError
from birthright.types import ChipId, ProductSerial, StationId
from tests.unit.fakes import MemoryStore, SoftwareIssuer

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ST = StationId("st1")
WO = "WO-1"


def csr_for(key: ec.EllipticCurvePrivateKey, serial: str = "x") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.DER)


def work_order(wo_id: str = WO, **changes: object) -> WorkOrder:
    base = WorkOrder(
        work_order_id=wo_id,
        product="P1",
        site="site1",
        line="line1",
        quantity=3,
        serial_prefix="T",
        serial_first=1,
        serial_last=10,
        next_serial=1,
        minted=0,
        status="open",
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.state.stations["st1"] = Station(ST, "site1", "line1", "active")
    s.state.stations["st2"] = Station(StationId("st2"), "site1", "line1", "active")
    s.state.stations["other-line"] = Station(StationId("other-line"), "site1", "line2", "active")
    s.state.stations["old"] = Station(StationId("old"), "site1", "line1", "suspended")
    s.state.work_orders[WO] = work_order()
    s.state.work_orders["WO-2"] = work_order("WO-2", serial_prefix="U")
    return s


@pytest.fixture
def issuer() -> SoftwareIssuer:
    return SoftwareIssuer()


@pytest.fixture
def service(store: MemoryStore, issuer: SoftwareIssuer) -> EnrollmentService:
    return EnrollmentService(store=store, issuer=issuer, clock=lambda: NOW)


def enroll(
    service: EnrollmentService,
    chip: str,
    key: ec.EllipticCurvePrivateKey,
    station: str = "st1",
    serial: str | None = None,
    wo: str = WO,
) -> EnrollmentResult:
    serial = serial or service.reserve_serial(StationId(station), ChipId(chip), wo).serial
    return service.enroll(
        EnrollmentRequest(StationId(station), wo, ProductSerial(serial), ChipId(chip), csr_for(key))
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_reserve_allocates_from_the_work_order_and_repeats_per_chip(
    service: EnrollmentService,
) -> None:
    a = service.reserve_serial(ST, ChipId("A"), WO)
    b = service.reserve_serial(ST, ChipId("B"), WO)
    assert (a.serial, b.serial) == ("T00000001", "T00000002")
    assert service.reserve_serial(ST, ChipId("A"), WO).serial == a.serial


def test_enroll_issues_once_and_retry_returns_the_same_certificate(
    service: EnrollmentService, issuer: SoftwareIssuer, store: MemoryStore
) -> None:
    key = new_key()
    first = enroll(service, "A", key)
    again = enroll(service, "A", key, serial=first.device.serial)
    assert first.created and not again.created
    assert again.device.cert_der == first.device.cert_der
    assert issuer.issued == 1
    assert store.state.work_orders[WO].minted == 1
    assert [e.event for e in store.state.audit] == ["enrollment"]


def test_quota_caps_minting_and_the_refusal_is_quota_exhausted(
    service: EnrollmentService, store: MemoryStore
) -> None:
    serials = [service.reserve_serial(ST, ChipId(f"C{i}"), WO).serial for i in range(3)]
    for i, serial in enumerate(serials):
        enroll(service, f"C{i}", new_key(), serial=serial)
    with pytest.raises(InputError) as caught:
        service.reserve_serial(ST, ChipId("C9"), WO)
    assert caught.value.code == "quota_exhausted"
    assert store.state.work_orders[WO].minted == 3


def test_a_reserved_serial_cannot_mint_past_the_quota(
    service: EnrollmentService, store: MemoryStore
) -> None:
    serials = [service.reserve_serial(ST, ChipId(f"C{i}"), WO).serial for i in range(4)]
    for i in range(3):
        enroll(service, f"C{i}", new_key(), serial=serials[i])
    with pytest.raises(InputError) as caught:
        enroll(service, "C3", new_key(), serial=serials[3])
    assert caught.value.code == "quota_exhausted"
    assert len(store.state.devices) == 3


def test_rate_ceiling_raises_one_alert_when_crossed(
    service: EnrollmentService, store: MemoryStore
) -> None:
    store.state.work_orders[WO] = work_order(quantity=5, rate_ceiling_per_minute=2)
    for i in range(4):
        enroll(service, f"C{i}", new_key())
    assert [a.kind for a in store.state.alerts] == ["line.rate_exceeded"]


Scenario = Callable[[EnrollmentService, MemoryStore, ec.EllipticCurvePrivateKey], object]

SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "shared_key": (lambda s, st, key: enroll(s, "B", key), "key_shared"),
    "chip_again_with_new_key": (lambda s, st, key: enroll(s, "A", new_key()), "serial_enrolled"),
    "unreserved_serial": (
        lambda s, st, key: enroll(s, "C", new_key(), serial="T00000009"),
        "serial_not_reserved",
    ),
    "other_stations_serial": (
        lambda s, st, key: enroll(
            s, "C", new_key(), serial=s.reserve_serial(StationId("st2"), ChipId("C"), WO).serial
        ),
        "serial_not_reserved",
    ),
    "serial_for_other_chip": (
        lambda s, st, key: enroll(
            s, "D", new_key(), serial=s.reserve_serial(ST, ChipId("C"), WO).serial
        ),
        "serial_chip_mismatch",
    ),
    "serial_of_another_work_order": (
        lambda s, st, key: enroll(
            s, "C", new_key(), serial=s.reserve_serial(ST, ChipId("C"), "WO-2").serial
        ),
        "serial_outside_work_order",
    ),
    "unknown_station": (
        lambda s, st, key: enroll(s, "C", new_key(), station="ghost", serial="T1"),
        "station_unknown",
    ),
    "suspended_station": (
        lambda s, st, key: enroll(s, "C", new_key(), station="old", serial="T1"),
        "station_suspended",
    ),
    "work_order_of_another_line": (
        lambda s, st, key: enroll(s, "C", new_key(), station="other-line"),
        "work_order_wrong_line",
    ),
    "unknown_work_order": (
        lambda s, st, key: enroll(s, "C", new_key(), wo="WO-X"),
        "work_order_unknown",
    ),
    "suspended_work_order": (
        lambda s, st, key: (
            st.state.work_orders.update(
                {WO: replace(st.state.work_orders[WO], status="suspended")}
            ),
            enroll(s, "C", new_key()),
        ),
        "work_order_suspended",
    ),
    "expired_work_order": (
        lambda s, st, key: (
            st.state.work_orders.update({WO: replace(st.state.work_orders[WO], valid_until=NOW)}),
            enroll(s, "C", new_key()),
        ),
        "work_order_expired",
    ),
    "garbage_csr": (
        lambda s, st, key: s.enroll(
            EnrollmentRequest(ST, WO, ProductSerial("T1"), ChipId("C"), b"\x30\x03\x02\x01\x00")
        ),
        "csr_malformed",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_refusals_have_stable_codes_and_write_only_an_audit_record(
    service: EnrollmentService, store: MemoryStore, scenario: str
) -> None:
    key = new_key()
    enroll(service, "A", key)
    devices_before = list(store.state.devices)
    minted_before = store.state.work_orders[WO].minted
    audit_before = len(store.state.audit)
    run, code = SCENARIOS[scenario]
    with pytest.raises((InputError, TrustError)) as caught:
        run(service, store, key)
    assert caught.value.code == code
    assert store.state.devices == devices_before
    assert store.state.work_orders[WO].minted == minted_before
    last = store.state.audit[audit_before:][-1]
    assert (last.outcome, last.code) == ("refused", code)


def test_shared_key_error_says_it_is_a_shared_secret(service: EnrollmentService) -> None:
    key = new_key()
    enroll(service, "A", key)
    with pytest.raises(InputError, match="shared secret"):
        enroll(service, "B", key)


def test_a_shared_key_is_a_security_event_with_a_critical_alert(
    service: EnrollmentService, store: MemoryStore
) -> None:
    key = new_key()
    enroll(service, "A", key)
    with pytest.raises(InputError):
        enroll(service, "B", key)
    assert [(a.kind, a.severity) for a in store.state.alerts] == [
        ("enrollment.key_shared", "critical")
    ]


def test_an_ordinary_bad_request_raises_no_alert(
    service: EnrollmentService, store: MemoryStore
) -> None:
    with pytest.raises(InputError):
        service.enroll(
            EnrollmentRequest(ST, WO, ProductSerial("T1"), ChipId("C"), b"\x30\x03\x02\x01\x00")
        )
    assert store.state.alerts == []
