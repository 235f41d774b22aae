"""Domain records of enrollment. Frozen: built once, trusted after."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from birthright.errors import InputError
from birthright.types import ChipId, ProductSerial, StationId


@dataclass(frozen=True)
class Station:
    station_id: StationId
    site: str
    line: str
    status: str  # "active" | "suspended" | "revoked"


@dataclass(frozen=True)
class WorkOrder:
    """What one line may mint: a product, a quantity, a serial range, a validity window."""

    work_order_id: str
    product: str
    site: str
    line: str
    quantity: int
    serial_prefix: str
    serial_first: int
    serial_last: int
    next_serial: int
    minted: int
    status: str  # "open" | "suspended" | "closed"
    valid_from: datetime
    valid_until: datetime
    rate_ceiling_per_minute: int | None = None

    def serial(self, number: int) -> ProductSerial:
        return ProductSerial(f"{self.serial_prefix}{number:08d}")


@dataclass(frozen=True)
class Reservation:
    serial: ProductSerial
    chip_id: ChipId
    station_id: StationId
    work_order_id: str
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
    work_order_id: str | None = None
    #: How the key was proven to live in a genuine SE ("pkcs11-vendor", "tpm"), or None.
    se_proof: str | None = None
    #: The attestation key proven to sit beside the identity key (a TPM AK's TPMT_PUBLIC),
    #: which signs the unit's firmware quotes; None for chips that have none.
    attestation_key: bytes | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.cert_der)


@dataclass(frozen=True)
class EnrollmentRequest:
    station_id: StationId
    work_order_id: str
    serial: ProductSerial
    chip_id: ChipId
    #: The PKCS#10 request as received (DER or PEM), parsed and checked by the service.
    csr: bytes
    #: Untrusted genuine-SE proof object (``{"kind": ..., ...}``), checked by the service.
    se_proof: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ProductPolicy:
    """What an operator requires of every unit of one product."""

    product: str
    #: Refuse identity keys not proven to live in a genuine secure element.
    require_genuine_se: bool
    updated_at: datetime | None = None


@dataclass(frozen=True)
class EnrollmentResult:
    device: DeviceRecord
    chain: tuple[x509.Certificate, ...]
    #: False when the request repeated an enrollment that already happened (idempotent retry).
    created: bool


@dataclass(frozen=True)
class Alert:
    kind: str  # dotted: "line.rate_exceeded", "station.counter_fork", …
    severity: str  # "critical" | "warning"
    message: str
    station_id: str | None = None
    work_order_id: str | None = None


@dataclass(frozen=True)
class WorkOrderSpec:
    """An operator's order for a line; checked when built."""

    work_order_id: str
    product: str
    site: str
    line: str
    quantity: int
    serial_prefix: str
    serial_first: int
    serial_last: int
    valid_from: datetime
    valid_until: datetime
    rate_ceiling_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise InputError("a work order needs a quantity of at least 1", code="bad_quantity")
        if not 0 <= self.serial_first <= self.serial_last <= 99_999_999:
            raise InputError(
                "the serial range must be 0 ≤ first ≤ last ≤ 99999999", code="bad_serial_range"
            )
        if self.serial_last - self.serial_first + 1 < self.quantity:
            raise InputError(
                "the serial range is smaller than the quantity", code="bad_serial_range"
            )
        if self.valid_until <= self.valid_from:
            raise InputError("a work order must end after it starts", code="bad_validity")
        if self.rate_ceiling_per_minute is not None and self.rate_ceiling_per_minute < 1:
            raise InputError(
                "a rate ceiling must be at least 1 unit per minute", code="bad_rate_ceiling"
            )
