"""What enrollment needs from the outside world, as small interfaces."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.audit.events import AuditEvent
from birthright.enrollment.model import Alert, DeviceRecord, Reservation, Station, WorkOrder
from birthright.errors import ConflictError
from birthright.types import ChipId, ProductSerial, StationId


class DuplicateRecord(ConflictError):
    """The database refused a write because a unique value already exists (a lost race)."""

    code = "duplicate"


class Issuer(Protocol):
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
        """Certify ``public_key``; ``policy_oids`` become the certificatePolicies."""
        ...

    def chain(self) -> list[x509.Certificate]: ...


class EnrollmentTx(Protocol):
    """Reads and writes inside one database transaction."""

    def station(self, station_id: StationId) -> Station | None: ...
    def device_by_serial(self, serial: ProductSerial) -> DeviceRecord | None: ...
    def device_by_chip(self, chip_id: ChipId) -> DeviceRecord | None: ...
    def device_by_key(self, key_fingerprint: str) -> DeviceRecord | None: ...
    def reservation(self, serial: ProductSerial) -> Reservation | None: ...
    def reservation_for_chip(self, chip_id: ChipId) -> Reservation | None: ...
    def work_order(self, work_order_id: str) -> WorkOrder | None: ...

    def requires_genuine_se(self, product: str) -> bool:
        """Whether the product's policy demands proof of a genuine secure element."""
        ...

    def has_policy_hook(self, product: str) -> bool:
        """Whether the product has an enrollment policy hook to ask (ADR 0015)."""
        ...

    def allocate_serial_number(self, work_order_id: str) -> int | None:
        """Atomically take the work order's next serial number; None when the range is spent."""
        ...

    def count_minted(self, work_order_id: str) -> int | None:
        """Atomically count one more identity against the quota of an open work order;
        returns the new count, or None when the quota is exhausted."""
        ...

    def enrollments_since(self, site: str, line: str, since: datetime) -> int: ...

    def raise_alert(self, alert: Alert, now: datetime) -> None: ...
    def add_reservation(self, reservation: Reservation) -> None: ...
    def add_device(self, device: DeviceRecord) -> None: ...

    def replace_certificate(
        self, device: DeviceRecord, *, superseded_cert_serial: str, now: datetime
    ) -> bool:
        """Record ``device``'s new key and certificate, if its current certificate is still
        ``superseded_cert_serial`` (False otherwise), and revoke that one as superseded."""
        ...

    def audit(self, event: AuditEvent, now: datetime) -> None: ...


class EnrollmentStore(Protocol):
    def transaction(self) -> AbstractContextManager[EnrollmentTx]:
        """A unit of work: commits on clean exit, rolls back on any exception.

        Raises ``DuplicateRecord`` when a unique constraint refuses the commit.
        """
        ...

    def record_refusal(
        self, event: AuditEvent, now: datetime, *, alert: Alert | None = None
    ) -> None:
        """Append a refusal (and the alert it raises, if any) to the audit log in its own
        transaction; nothing else is written."""
        ...
