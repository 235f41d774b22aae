"""EST use cases over the enrollment service: same checks, same audit, EST's wire formats.

``simpleenroll`` = reserve the chip's serial in the work order the label names (idempotent per
chip, ADR 0001) + enroll, exactly as a station's native two calls would; the CSR may name the
serial it expects, which must be the reserved one. Before reserving, it refuses what EST can
never satisfy (a product that requires genuine-SE proof) and a key already enrolled for
another chip, so those refusals leave no reservation behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from birthright.ca.csr import ParsedCsr, parse_csr
from birthright.enrollment.model import EnrollmentRequest, EnrollmentResult
from birthright.enrollment.ports import EnrollmentStore
from birthright.enrollment.reenroll import ReenrollmentRequest
from birthright.enrollment.refusals import EnrollmentRefused
from birthright.enrollment.service import EnrollmentService
from birthright.errors import InputError, TrustError
from birthright.est.wire import csr_identity, csr_serial, decode_csr_body
from birthright.types import ChipId, ProductSerial, StationId


class EstProofUnsupported(TrustError):
    """The product requires genuine-SE proof, which an EST request cannot carry."""

    code = "est_se_proof_unsupported"


@dataclass(frozen=True)
class DeviceCaller:
    """A unit that authenticated the TLS connection with its current certificate."""

    serial: ProductSerial
    cert_serial: str


class EstEnrollment:
    def __init__(
        self,
        *,
        enrollment: EnrollmentService,
        store: EnrollmentStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._enrollment, self._store, self._clock = enrollment, store, clock

    def simpleenroll(
        self, station_id: StationId, work_order_id: str, body: bytes
    ) -> EnrollmentResult:
        now = self._clock()
        chip = ChipId("")
        try:
            der = decode_csr_body(body)
            csr = parse_csr(der)
            identity = csr_identity(csr)
            chip = identity.chip_id
            self._precheck(work_order_id, csr, chip)
        except (InputError, TrustError) as e:
            self._enrollment.refuse(
                "est.simpleenroll",
                e,
                station_id=station_id,
                chip_id=chip,
                work_order_id=work_order_id,
                now=now,
            )
            raise
        reservation = self._enrollment.reserve_serial(station_id, chip, work_order_id)
        if identity.serial is not None and identity.serial != reservation.serial:
            error = EnrollmentRefused(
                f"the request names serial {identity.serial}, but chip {chip} has serial "
                f"{reservation.serial} in work order {work_order_id}",
                code="serial_not_reserved",
            )
            self._enrollment.refuse(
                "est.simpleenroll",
                error,
                station_id=station_id,
                chip_id=chip,
                serial=identity.serial,
                work_order_id=work_order_id,
                key_fingerprint=csr.key_fingerprint,
                now=now,
            )
            raise error
        return self._enrollment.enroll(
            EnrollmentRequest(
                station_id=station_id,
                work_order_id=work_order_id,
                serial=reservation.serial,
                chip_id=chip,
                csr=der,
                se_proof=None,
            )
        )

    def _precheck(self, work_order_id: str, csr: ParsedCsr, chip: ChipId) -> None:
        with self._store.transaction() as tx:
            order = tx.work_order(work_order_id)
            if order is not None and tx.requires_genuine_se(order.product):
                raise EstProofUnsupported(
                    f"product {order.product} requires proof that the identity key lives in a "
                    "genuine secure element, which an EST request cannot carry: enroll its "
                    "units through /v1/enrollments with se_proof"
                )
            owner = tx.device_by_key(csr.key_fingerprint)
        if owner is not None and owner.chip_id != chip:
            raise EnrollmentRefused(
                "this public key is already enrolled for another unit: a key shared by "
                "two units is a shared secret, and one leaked key would own both",
                code="key_shared",
            )

    def simplereenroll(self, caller: StationId | DeviceCaller, body: bytes) -> EnrollmentResult:
        """A new certificate for the unit the caller is (a device) or names in the CSR's
        serialNumber (a station)."""
        now = self._clock()
        station = None if isinstance(caller, DeviceCaller) else caller
        try:
            der = decode_csr_body(body)
            if isinstance(caller, DeviceCaller):
                serial = caller.serial
            else:
                named = csr_serial(parse_csr(der))
                if named is None:
                    raise InputError(
                        "a station re-enrolls a unit named by the CSR subject's serialNumber",
                        code="est_serial_missing",
                    )
                serial = named
        except (InputError, TrustError) as e:
            self._enrollment.refuse(
                "reenrollment", e, station_id=station, chip_id=ChipId(""), now=now
            )
            raise
        return self._enrollment.reenroll(
            ReenrollmentRequest(
                serial=serial,
                csr=der,
                station_id=station,
                device_cert_serial=(
                    caller.cert_serial if isinstance(caller, DeviceCaller) else None
                ),
            )
        )
