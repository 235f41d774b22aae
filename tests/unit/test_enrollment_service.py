"""Enrollment decisions, against in-memory fakes of the store and issuer ports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.enrollment.model import EnrollmentRequest, Station
from birthright.enrollment.service import EnrollmentService
from birthright.errors import InputError, TrustError
from birthright.types import ChipId, ProductSerial, StationId
from tests.unit.fakes import MemoryStore, SoftwareIssuer

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ST = StationId("st1")


def csr_for(key: ec.EllipticCurvePrivateKey, serial: str = "x") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.DER)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.state.stations["st1"] = Station(ST, "site1", "line1", "active")
    s.state.stations["st2"] = Station(StationId("st2"), "site1", "line2", "active")
    s.state.stations["old"] = Station(StationId("old"), "site1", "line1", "suspended")
    return s


@pytest.fixture
def issuer() -> SoftwareIssuer:
    return SoftwareIssuer()


@pytest.fixture
def service(store: MemoryStore, issuer: SoftwareIssuer) -> EnrollmentService:
    return EnrollmentService(
        store=store, issuer=issuer, clock=lambda: NOW, product="P1", serial_prefix="T"
    )


def enroll(
    service: EnrollmentService,
    chip: str,
    key: ec.EllipticCurvePrivateKey,
    station: str = "st1",
    serial: str | None = None,
) -> object:
    serial = serial or service.reserve_serial(StationId(station), ChipId(chip)).serial
    return service.enroll(
        EnrollmentRequest(StationId(station), ProductSerial(serial), ChipId(chip), csr_for(key))
    )


def test_reserve_allocates_sequential_serials_and_repeats_per_chip(
    service: EnrollmentService,
) -> None:
    a = service.reserve_serial(ST, ChipId("A"))
    b = service.reserve_serial(ST, ChipId("B"))
    assert (a.serial, b.serial) == ("T00000001", "T00000002")
    assert service.reserve_serial(ST, ChipId("A")).serial == a.serial


def test_enroll_issues_once_and_retry_returns_the_same_certificate(
    service: EnrollmentService, issuer: SoftwareIssuer, store: MemoryStore
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = service.reserve_serial(ST, ChipId("A")).serial
    req = EnrollmentRequest(ST, serial, ChipId("A"), csr_for(key))
    first = service.enroll(req)
    again = service.enroll(EnrollmentRequest(ST, serial, ChipId("A"), csr_for(key)))
    assert first.created and not again.created
    assert again.device.cert_der == first.device.cert_der
    assert issuer.issued == 1
    assert [e.event for e in store.state.audit] == ["enrollment"]


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("shared_key", "key_shared"),
        ("chip_again_with_new_key", "serial_enrolled"),
        ("unreserved_serial", "serial_not_reserved"),
        ("other_stations_serial", "serial_not_reserved"),
        ("serial_for_other_chip", "serial_chip_mismatch"),
        ("unknown_station", "station_unknown"),
        ("suspended_station", "station_suspended"),
        ("garbage_csr", "csr_malformed"),
    ],
)
def test_refusals_have_stable_codes_and_write_only_an_audit_record(
    service: EnrollmentService, store: MemoryStore, scenario: str, code: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enroll(service, "A", key)
    devices_before = list(store.state.devices)
    audit_before = len(store.state.audit)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises((InputError, TrustError)) as caught:
        if scenario == "shared_key":
            enroll(service, "B", key)
        elif scenario == "chip_again_with_new_key":
            enroll(service, "A", other)
        elif scenario == "unreserved_serial":
            enroll(service, "C", other, serial="T00000042")
        elif scenario == "other_stations_serial":
            serial = service.reserve_serial(StationId("st2"), ChipId("C")).serial
            enroll(service, "C", other, station="st1", serial=serial)
        elif scenario == "serial_for_other_chip":
            serial = service.reserve_serial(ST, ChipId("C")).serial
            enroll(service, "D", other, serial=serial)
        elif scenario == "unknown_station":
            enroll(service, "C", other, station="ghost", serial="T00000001")
        elif scenario == "suspended_station":
            enroll(service, "C", other, station="old", serial="T00000001")
        elif scenario == "garbage_csr":
            service.enroll(
                EnrollmentRequest(ST, ProductSerial("T1"), ChipId("C"), b"\x30\x03\x02\x01\x00")
            )
    assert caught.value.code == code
    assert store.state.devices == devices_before
    refusals = store.state.audit[audit_before:]
    assert [(e.outcome, e.code) for e in refusals][-1] == ("refused", code)


def test_shared_key_error_says_it_is_a_shared_secret(service: EnrollmentService) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enroll(service, "A", key)
    with pytest.raises(InputError, match="shared secret"):
        enroll(service, "B", key)
