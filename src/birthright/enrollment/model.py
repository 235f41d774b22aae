"""Domain records of enrollment. Frozen: built once, trusted after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from birthright.types import ChipId, ProductSerial, StationId


@dataclass(frozen=True)
class Station:
    station_id: StationId
    site: str
    line: str
    status: str  # "active" | "suspended" | "revoked"


@dataclass(frozen=True)
class Reservation:
    serial: ProductSerial
    chip_id: ChipId
    station_id: StationId
    reserved_at: datetime


@dataclass(frozen=True)
class DeviceRecord:
    serial: ProductSerial
    chip_id: ChipId
    key_fingerprint: str
    public_key_der: bytes
    cert_serial: str
    cert_der: bytes
    product: str
    station_id: StationId
    status: str  # "active" | "revoked"
    enrolled_at: datetime

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cert_der)


@dataclass(frozen=True)
class EnrollmentRequest:
    station_id: StationId
    serial: ProductSerial
    chip_id: ChipId
    #: The PKCS#10 request as received (DER or PEM), parsed and checked by the service.
    csr: bytes


@dataclass(frozen=True)
class EnrollmentResult:
    device: DeviceRecord
    chain: tuple[x509.Certificate, ...]
    #: False when the request repeated an enrollment that already happened (idempotent retry).
    created: bool
