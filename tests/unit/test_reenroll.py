"""Re-enrollment decisions (EST simplereenroll), against in-memory fakes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.enrollment.model import EnrollmentResult
from birthright.enrollment.reenroll import ReenrollmentRequest
from birthright.enrollment.service import EnrollmentService
from birthright.errors import BirthrightError
from birthright.types import ProductSerial, StationId
from tests.unit.fakes import MemoryStore, SoftwareIssuer
from tests.unit.test_enrollment_service import ST, csr_for, enroll, new_key, service, store

__all__ = ["service", "store"]  # fixtures


@pytest.fixture
def issuer() -> SoftwareIssuer:
    return SoftwareIssuer()


@pytest.fixture
def unit(service: EnrollmentService) -> tuple[EnrollmentResult, ec.EllipticCurvePrivateKey]:
    key = new_key()
    return enroll(service, "A", key), key


def _reenroll(
    service: EnrollmentService, serial: str, key: ec.EllipticCurvePrivateKey, **who: object
) -> EnrollmentResult:
    args = {"station_id": ST, **who}
    return service.reenroll(ReenrollmentRequest(serial=serial, csr=csr_for(key), **args))  # type: ignore[arg-type]


def test_a_station_of_the_line_reissues_for_a_new_key_and_supersedes_the_old_certificate(
    service: EnrollmentService,
    store: MemoryStore,
    unit: tuple[EnrollmentResult, ec.EllipticCurvePrivateKey],
) -> None:
    first, _key = unit
    renewed = _reenroll(service, first.device.serial, new_key())
    assert renewed.device.cert_serial != first.device.cert_serial
    assert renewed.device.key_fingerprint != first.device.key_fingerprint
    assert store.state.superseded == [first.device.cert_serial]
    assert store.state.audit[-1].event == "reenrollment"


def test_the_unit_itself_reenrolls_with_its_current_certificate_only(
    service: EnrollmentService, unit: tuple[EnrollmentResult, ec.EllipticCurvePrivateKey]
) -> None:
    first, key = unit
    serial, cert = first.device.serial, first.device.cert_serial
    renewed = _reenroll(service, serial, key, station_id=None, device_cert_serial=cert)
    assert renewed.device.key_fingerprint == first.device.key_fingerprint
    with pytest.raises(BirthrightError) as caught:
        _reenroll(service, serial, key, station_id=None, device_cert_serial=cert)
    assert caught.value.code == "certificate_superseded"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("revoked", "device_revoked"),
        ("other_units_key", "key_shared"),
        ("genuine_key_replaced", "se_not_genuine"),
        ("station_of_another_line", "device_other_line"),
        ("unknown_unit", "device_unknown"),
    ],
)
def test_refusals_are_audited_and_change_nothing(
    service: EnrollmentService,
    store: MemoryStore,
    unit: tuple[EnrollmentResult, ec.EllipticCurvePrivateKey],
    case: str,
    code: str,
) -> None:
    first, _key = unit
    serial, station, csr_key = first.device.serial, ST, new_key()
    if case == "revoked":
        store.state.devices[0] = replace(store.state.devices[0], status="revoked")
    elif case == "other_units_key":
        csr_key = new_key()
        enroll(service, "B", csr_key)
    elif case == "genuine_key_replaced":
        store.state.devices[0] = replace(store.state.devices[0], se_proof="pkcs11-vendor")
    elif case == "station_of_another_line":
        station = StationId("other-line")
    elif case == "unknown_unit":
        serial = ProductSerial("T99999999")
    before = list(store.state.devices)
    with pytest.raises(BirthrightError) as caught:
        _reenroll(service, serial, csr_key, station_id=station)
    assert caught.value.code == code
    assert store.state.devices == before and store.state.superseded == []
    assert (store.state.audit[-1].event, store.state.audit[-1].code) == ("reenrollment", code)
