"""In-memory fakes of our own ports, for unit tests of pure logic."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from birthright.audit.events import AuditEvent
from birthright.enrollment.model import Alert, DeviceRecord, Reservation, Station, WorkOrder
from birthright.enrollment.ports import DuplicateRecord
from birthright.types import ChipId, ProductSerial, StationId


@dataclass
class _State:
    stations: dict[str, Station] = field(default_factory=dict)
    devices: list[DeviceRecord] = field(default_factory=list)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    work_orders: dict[str, WorkOrder] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    audit: list[AuditEvent] = field(default_factory=list)
    genuine_products: set[str] = field(default_factory=set)
    hooked_products: set[str] = field(default_factory=set)
    superseded: list[str] = field(default_factory=list)


class MemoryTx:
    def __init__(self, state: _State) -> None:
        self.s = state

    def station(self, station_id: StationId) -> Station | None:
        return self.s.stations.get(station_id)

    def _find(self, attr: str, value: str) -> DeviceRecord | None:
        return next((d for d in self.s.devices if getattr(d, attr) == value), None)

    def device_by_serial(self, serial: ProductSerial) -> DeviceRecord | None:
        return self._find("serial", serial)

    def device_by_chip(self, chip_id: ChipId) -> DeviceRecord | None:
        return self._find("chip_id", chip_id)

    def device_by_key(self, key_fingerprint: str) -> DeviceRecord | None:
        return self._find("key_fingerprint", key_fingerprint)

    def reservation(self, serial: ProductSerial) -> Reservation | None:
        return self.s.reservations.get(serial)

    def reservation_for_chip(self, chip_id: ChipId) -> Reservation | None:
        return next((r for r in self.s.reservations.values() if r.chip_id == chip_id), None)

    def work_order(self, work_order_id: str) -> WorkOrder | None:
        return self.s.work_orders.get(work_order_id)

    def requires_genuine_se(self, product: str) -> bool:
        return product in self.s.genuine_products

    def has_policy_hook(self, product: str) -> bool:
        return product in self.s.hooked_products

    def allocate_serial_number(self, work_order_id: str) -> int | None:
        wo = self.s.work_orders[work_order_id]
        if wo.next_serial > wo.serial_last:
            return None
        self.s.work_orders[work_order_id] = replace(wo, next_serial=wo.next_serial + 1)
        return wo.next_serial

    def count_minted(self, work_order_id: str) -> int | None:
        wo = self.s.work_orders[work_order_id]
        if wo.status != "open" or wo.minted >= wo.quantity:
            return None
        self.s.work_orders[work_order_id] = replace(wo, minted=wo.minted + 1)
        return wo.minted + 1

    def enrollments_since(self, site: str, line: str, since: datetime) -> int:
        return sum(
            1
            for d in self.s.devices
            if d.enrolled_at >= since
            and d.work_order_id in self.s.work_orders
            and (self.s.work_orders[d.work_order_id].site, self.s.work_orders[d.work_order_id].line)
            == (site, line)
        )

    def raise_alert(self, alert: Alert, now: datetime) -> None:
        self.s.alerts.append(alert)

    def add_reservation(self, reservation: Reservation) -> None:
        self.s.reservations[reservation.serial] = reservation

    def add_device(self, device: DeviceRecord) -> None:
        for attr in ("serial", "chip_id", "key_fingerprint"):
            if self._find(attr, getattr(device, attr)):
                raise DuplicateRecord(f"duplicate {attr}")
        self.s.devices.append(device)

    def replace_certificate(
        self, device: DeviceRecord, *, superseded_cert_serial: str, now: datetime
    ) -> bool:
        for i, d in enumerate(self.s.devices):
            if d.serial == device.serial:
                if d.cert_serial != superseded_cert_serial or d.status != "active":
                    return False
                self.s.devices[i] = device
                self.s.superseded.append(superseded_cert_serial)
                return True
        return False

    def audit(self, event: AuditEvent, now: datetime) -> None:
        self.s.audit.append(event)


class MemoryStore:
    """Transactions copy the state and swap it in on success: rollback is free."""

    def __init__(self) -> None:
        self.state = _State()

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        working = copy.deepcopy(self.state)
        yield MemoryTx(working)
        self.state = working

    def record_refusal(
        self, event: AuditEvent, now: datetime, *, alert: Alert | None = None
    ) -> None:
        self.state.audit.append(event)
        if alert is not None:
            self.state.alerts.append(alert)


class SoftwareIssuer:
    """A throwaway software CA: enough to test the enrollment logic, not the profile."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuing")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.issued = 0

    def issue_device(
        self,
        *,
        public_key: ec.EllipticCurvePublicKey,
        product_serial: str,
        chip_id: str,
        now: datetime,
        product: str | None = None,
        policy_oids: Sequence[str] = (),
    ) -> x509.Certificate:
        self.issued += 1
        subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, product_serial)])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )

    def chain(self) -> list[x509.Certificate]:
        return [self.cert]
