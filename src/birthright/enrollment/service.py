"""Enrollment: a station's request for a unit's identity becomes one recorded certificate.

Pure decision logic over the ``EnrollmentStore`` and ``Issuer`` ports. Every refusal raises an
``InputError`` with a stable code and leaves exactly one audit record behind; every success is
one transaction holding the device, its certificate and its audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from birthright.audit.events import AuditEvent
from birthright.ca.csr import ParsedCsr, parse_csr
from birthright.enrollment.checks import (
    require_active_station,
    require_usable_work_order,
    watch_rate,
)
from birthright.enrollment.model import (
    Alert,
    DeviceRecord,
    EnrollmentRequest,
    EnrollmentResult,
    Reservation,
)
from birthright.enrollment.ports import DuplicateRecord, EnrollmentStore, Issuer
from birthright.enrollment.reenroll import Reenroller, ReenrollmentRequest
from birthright.enrollment.refusals import (
    SECURITY_EVENTS,
    EnrollmentRefused,
    QuotaExhausted,
    StationRefused,
    WorkOrderRefused,
    WorkOrderUnknown,
)
from birthright.errors import InputError, TrustError
from birthright.genuine import SeProofVerifiers, appraise
from birthright.policyhook.gate import GateVerdict, PolicyGate, Unit
from birthright.types import ChipId, ProductSerial, StationId

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

__all__ = [
    "SECURITY_EVENTS",
    "EnrollmentRefused",
    "EnrollmentService",
    "QuotaExhausted",
    "StationRefused",
    "WorkOrderRefused",
    "WorkOrderUnknown",
]


class EnrollmentService:
    def __init__(
        self,
        *,
        store: EnrollmentStore,
        issuer: Issuer,
        clock: Clock,
        se_proofs: SeProofVerifiers | None = None,
        policy_gate: PolicyGate | None = None,
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._clock = clock
        self._se_proofs = se_proofs if se_proofs is not None else SeProofVerifiers()
        self._policy_gate = policy_gate

    # -- serial reservation -------------------------------------------------------------

    def reserve_serial(
        self, station_id: StationId, chip_id: ChipId, work_order_id: str
    ) -> Reservation:
        """Hand the station the next serial of its work order for ``chip_id``; the same chip
        gets the same serial again (a station that crashed after asking simply asks again)."""
        now = self._clock()
        try:
            try:
                return self._reserve(station_id, chip_id, work_order_id, now)
            except DuplicateRecord:
                # Another request reserved for this chip at the same moment: read its answer.
                return self._reserve(station_id, chip_id, work_order_id, now)
        except (InputError, TrustError) as e:
            self.refuse(
                "serial.reserve",
                e,
                station_id=station_id,
                chip_id=chip_id,
                work_order_id=work_order_id,
                now=now,
            )
            raise

    def _reserve(
        self, station_id: StationId, chip_id: ChipId, work_order_id: str, now: datetime
    ) -> Reservation:
        with self._store.transaction() as tx:
            station = self._require_active_station(tx, station_id)
            existing = tx.reservation_for_chip(chip_id)
            if existing is not None:
                if existing.station_id != station_id:
                    raise EnrollmentRefused(
                        f"chip {chip_id} already has serial {existing.serial} "
                        f"reserved by another station",
                        code="chip_reserved_elsewhere",
                    )
                if existing.work_order_id != work_order_id:
                    raise EnrollmentRefused(
                        f"chip {chip_id} already has serial {existing.serial} "
                        f"in work order {existing.work_order_id}",
                        code="chip_reserved_elsewhere",
                    )
                return existing
            if tx.device_by_chip(chip_id) is not None:
                raise EnrollmentRefused(f"chip {chip_id} is already enrolled", code="chip_enrolled")
            order = self._require_usable_work_order(tx, work_order_id, station, now)
            if order.minted >= order.quantity:
                raise QuotaExhausted(
                    f"work order {order.work_order_id} has minted all {order.quantity} units"
                )
            number = tx.allocate_serial_number(order.work_order_id)
            if number is None:
                raise QuotaExhausted(
                    f"work order {order.work_order_id} has no serial numbers left",
                    code="serial_range_exhausted",
                )
            reservation = Reservation(
                serial=order.serial(number),
                chip_id=chip_id,
                station_id=station_id,
                work_order_id=order.work_order_id,
                reserved_at=now,
            )
            tx.add_reservation(reservation)
            return reservation

    # -- genuine-SE challenge -----------------------------------------------------------

    def se_challenge(
        self,
        station_id: StationId,
        chip_id: ChipId,
        work_order_id: str,
        request: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A fresh challenge for a chip whose genuineness proof needs one (TPM credential
        activation); its answer is the ``se_proof`` of the enrollment that follows."""
        now = self._clock()
        try:
            with self._store.transaction() as tx:
                self._require_active_station(tx, station_id)
            return self._se_proofs.challenge(request, chip_id=chip_id, now=now)
        except (InputError, TrustError) as e:
            self.refuse(
                "se.challenge",
                e,
                station_id=station_id,
                chip_id=chip_id,
                work_order_id=work_order_id,
                now=now,
            )
            raise

    # -- enrollment ---------------------------------------------------------------------

    def enroll(self, request: EnrollmentRequest) -> EnrollmentResult:
        now = self._clock()
        csr: ParsedCsr | None = None
        try:
            csr = parse_csr(request.csr)
            hook = self._ask_policy_hook(request, csr)
            try:
                return self._enroll(request, csr, now, hook)
            except DuplicateRecord:
                # Lost a race on a unique value: decide again against what won.
                return self._enroll(request, csr, now, hook)
        except (InputError, TrustError) as e:
            self.refuse(
                "enrollment",
                e,
                station_id=request.station_id,
                chip_id=request.chip_id,
                serial=request.serial,
                work_order_id=request.work_order_id,
                key_fingerprint=csr.key_fingerprint if csr else None,
                now=now,
            )
            raise

    def _ask_policy_hook(self, request: EnrollmentRequest, csr: ParsedCsr) -> GateVerdict | None:
        """Ask the product's policy hook (if any) before issuing, outside any transaction.

        Only for a request that the issuing transaction would otherwise accept as far as a
        short read can tell (its reservation, a key not yet enrolled): the hook is not told
        about units the backend refuses anyway, and a retry of a finished enrollment is
        answered without asking again. Those refusals come below, with their own codes."""
        if self._policy_gate is None:
            return None
        with self._store.transaction() as tx:
            order = tx.work_order(request.work_order_id)
            if order is None or not tx.has_policy_hook(order.product):
                return None  # the common case: one short read, no hook to ask
            reserved = tx.reservation(request.serial)
            taken = tx.device_by_serial(request.serial) or tx.device_by_key(csr.key_fingerprint)
        expected = (request.serial, request.chip_id, request.station_id, request.work_order_id)
        if (
            taken is not None
            or reserved is None
            or (reserved.serial, reserved.chip_id, reserved.station_id, reserved.work_order_id)
            != expected
        ):
            return None
        return self._policy_gate.check(
            Unit(
                product=order.product,
                station=request.station_id,
                work_order=order.work_order_id,
                serial=request.serial,
                chip_id=request.chip_id,
                public_key_pem=csr.public_key_pem,
            )
        )

    def _enroll(
        self,
        request: EnrollmentRequest,
        csr: ParsedCsr,
        now: datetime,
        hook: GateVerdict | None = None,
    ) -> EnrollmentResult:
        fingerprint = csr.key_fingerprint
        with self._store.transaction() as tx:
            station = self._require_active_station(tx, request.station_id)
            existing = tx.device_by_serial(request.serial)
            if existing is not None:
                if (
                    existing.chip_id == request.chip_id
                    and existing.key_fingerprint == fingerprint
                    and existing.station_id == request.station_id
                ):
                    return EnrollmentResult(existing, tuple(self._issuer.chain()), created=False)
                raise EnrollmentRefused(
                    f"serial {request.serial} is already enrolled", code="serial_enrolled"
                )
            reservation = tx.reservation(request.serial)
            if reservation is None or reservation.station_id != request.station_id:
                raise EnrollmentRefused(
                    f"serial {request.serial} was not reserved by station {request.station_id}",
                    code="serial_not_reserved",
                )
            if reservation.chip_id != request.chip_id:
                raise EnrollmentRefused(
                    f"serial {request.serial} was reserved for another chip",
                    code="serial_chip_mismatch",
                )
            if reservation.work_order_id != request.work_order_id:
                raise EnrollmentRefused(
                    f"serial {request.serial} belongs to work order "
                    f"{reservation.work_order_id}, not {request.work_order_id}",
                    code="serial_outside_work_order",
                )
            order = self._require_usable_work_order(tx, request.work_order_id, station, now)
            if tx.device_by_chip(request.chip_id) is not None:
                raise EnrollmentRefused(
                    f"chip {request.chip_id} is already enrolled", code="chip_enrolled"
                )
            if tx.device_by_key(fingerprint) is not None:
                raise EnrollmentRefused(
                    "this public key is already enrolled for another unit: a key shared by "
                    "two units is a shared secret, and one leaked key would own both",
                    code="key_shared",
                )
            appraisal = appraise(
                self._se_proofs,
                request.se_proof,
                required=tx.requires_genuine_se(order.product),
                public_key=csr.public_key,
                chip_id=request.chip_id,
                product=order.product,
                now=now,
            )
            if tx.count_minted(order.work_order_id) is None:
                raise QuotaExhausted(
                    f"work order {order.work_order_id} has minted all {order.quantity} units"
                )
            cert = self._issuer.issue_device(
                public_key=csr.public_key,
                product_serial=request.serial,
                chip_id=request.chip_id,
                now=now,
                product=order.product,
                policy_oids=appraisal.proven.policy_oids if appraisal.proven else (),
            )
            device = DeviceRecord(
                serial=request.serial,
                chip_id=request.chip_id,
                key_fingerprint=fingerprint,
                public_key_der=csr.public_key_der,
                cert_serial=format(cert.serial_number, "x"),
                cert_der=cert.public_bytes(Encoding.DER),
                product=order.product,
                station_id=request.station_id,
                status="active",
                enrolled_at=now,
                work_order_id=order.work_order_id,
                se_proof=appraisal.kind,
                attestation_key=appraisal.proven.attestation_key if appraisal.proven else None,
            )
            tx.add_device(device)
            self._watch_rate(tx, order, now)
            tx.audit(
                AuditEvent(
                    event="enrollment",
                    outcome="ok",
                    station_id=request.station_id,
                    serial=request.serial,
                    detail={
                        "chip_id": request.chip_id,
                        "key_fingerprint": fingerprint,
                        "cert_serial": device.cert_serial,
                        "work_order_id": order.work_order_id,
                        **appraisal.audit_detail(),
                        **(hook.audit_detail() if hook else {}),
                    },
                ),
                now,
            )
        log.info(
            "enrolled serial=%s chip_id=%s station=%s",
            request.serial,
            request.chip_id,
            request.station_id,
        )
        return EnrollmentResult(device, tuple(self._issuer.chain()), created=True)

    # -- re-enrollment ------------------------------------------------------------------

    def reenroll(self, request: ReenrollmentRequest) -> EnrollmentResult:
        """A new certificate for an enrolled, active unit (``enrollment.reenroll``)."""
        return Reenroller(
            store=self._store,
            issuer=self._issuer,
            clock=self._clock,
            refuse=self.refuse,
            policy_gate=self._policy_gate,
        ).reenroll(request)

    # -- helpers ------------------------------------------------------------------------

    _require_active_station = staticmethod(require_active_station)
    _require_usable_work_order = staticmethod(require_usable_work_order)
    _watch_rate = staticmethod(watch_rate)

    def refuse(
        self,
        event: str,
        error: InputError | TrustError,
        *,
        station_id: StationId | None,
        chip_id: ChipId,
        now: datetime,
        serial: ProductSerial | None = None,
        work_order_id: str | None = None,
        key_fingerprint: str | None = None,
    ) -> None:
        """Record a refusal (and the alert a security event raises) in the audit log."""
        detail: dict[str, str] = {"chip_id": chip_id, "message": error.message}
        if work_order_id:
            detail["work_order_id"] = work_order_id
        if key_fingerprint:
            detail["key_fingerprint"] = key_fingerprint
        alert = None
        if error.code in SECURITY_EVENTS:
            alert = Alert(
                kind=f"enrollment.{error.code}",
                severity="critical",
                message=f"{SECURITY_EVENTS[error.code]}: {error.message}",
                station_id=station_id,
                work_order_id=work_order_id,
            )
        self._store.record_refusal(
            AuditEvent(
                event=event,
                outcome="refused",
                code=error.code,
                station_id=station_id,
                serial=serial,
                detail=detail,
            ),
            now,
            alert=alert,
        )
        log.warning(
            "refused %s code=%s station=%s chip_id=%s serial=%s",
            event,
            error.code,
            station_id,
            chip_id,
            serial,
        )
