"""Re-enrollment: an enrolled, active unit gets a new certificate, for its key or a new one.

Called by EST ``simplereenroll`` (ADR 0014). The caller is either the unit itself (its current
certificate authenticated the TLS connection) or a station of the unit's line. The new
certificate replaces the recorded one and the old one is revoked as ``superseded`` in the same
transaction. A revoked unit is refused; a new key must be unknown, and cannot replace a key
proven to live in a genuine SE (EST carries no such proof). The product's policy hook is asked
before issuing, outside any transaction. Every refusal leaves one audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.audit.events import AuditEvent
from birthright.ca.csr import ParsedCsr, parse_csr
from birthright.enrollment.checks import require_active_station
from birthright.enrollment.model import DeviceRecord, EnrollmentResult
from birthright.enrollment.ports import EnrollmentStore, EnrollmentTx, Issuer
from birthright.enrollment.refusals import EnrollmentRefused
from birthright.errors import ConflictError, InputError, NotFoundError, TrustError
from birthright.policyhook.gate import GateVerdict, PolicyGate, Unit
from birthright.types import ChipId, ProductSerial, StationId


@dataclass(frozen=True)
class ReenrollmentRequest:
    serial: ProductSerial
    csr: bytes
    #: The station asking for the unit, or None when the unit itself authenticated.
    station_id: StationId | None = None
    #: The certificate serial (hex) the unit authenticated with, when it did.
    device_cert_serial: str | None = None


class DeviceRevoked(TrustError):
    code = "device_revoked"


Refuse = Callable[..., None]


class Reenroller:
    def __init__(
        self,
        *,
        store: EnrollmentStore,
        issuer: Issuer,
        clock: Callable[[], datetime],
        refuse: Refuse,
        policy_gate: PolicyGate | None = None,
    ) -> None:
        self._store, self._issuer, self._clock = store, issuer, clock
        self._refuse, self._gate = refuse, policy_gate

    def reenroll(self, request: ReenrollmentRequest) -> EnrollmentResult:
        now = self._clock()
        csr: ParsedCsr | None = None
        chip = ChipId("")
        try:
            csr = parse_csr(request.csr)
            with self._store.transaction() as tx:
                device = self._check(tx, request, csr)
            chip = device.chip_id
            hook = self._ask_hook(device, request, csr)
            return self._reissue(request, csr, device, hook, now)
        except (InputError, TrustError) as e:
            self._refuse(
                "reenrollment",
                e,
                station_id=request.station_id,
                chip_id=chip,
                serial=request.serial,
                key_fingerprint=csr.key_fingerprint if csr else None,
                now=now,
            )
            raise

    def _check(
        self, tx: EnrollmentTx, request: ReenrollmentRequest, csr: ParsedCsr
    ) -> DeviceRecord:
        device = tx.device_by_serial(request.serial)
        if device is None:
            raise NotFoundError(f"no enrolled unit {request.serial}", code="device_unknown")
        if device.status != "active":
            raise DeviceRevoked(f"unit {request.serial} is {device.status}: no new certificate")
        if request.station_id is not None:
            self._check_station(tx, request.station_id, device)
        elif request.device_cert_serial != device.cert_serial:
            raise DeviceRevoked(
                f"the certificate presented is not the current one of unit {request.serial}",
                code="certificate_superseded",
            )
        if csr.key_fingerprint != device.key_fingerprint:
            if tx.device_by_key(csr.key_fingerprint) is not None:
                raise EnrollmentRefused(
                    "this public key is already enrolled for another unit", code="key_shared"
                )
            if device.se_proof is not None or tx.requires_genuine_se(device.product):
                raise EnrollmentRefused(
                    f"unit {request.serial}'s key was proven to live in a genuine secure "
                    "element; a new key needs that proof again, which EST cannot carry: "
                    "re-enroll with the same key",
                    code="se_not_genuine",
                )
        return device

    @staticmethod
    def _check_station(tx: EnrollmentTx, station_id: StationId, device: DeviceRecord) -> None:
        station = require_active_station(tx, station_id)
        order = tx.work_order(device.work_order_id) if device.work_order_id else None
        if order is None or (order.site, order.line) != (station.site, station.line):
            raise TrustError(
                f"unit {device.serial} was not made on station {station_id}'s line",
                code="device_other_line",
            )

    def _ask_hook(
        self, device: DeviceRecord, request: ReenrollmentRequest, csr: ParsedCsr
    ) -> GateVerdict | None:
        if self._gate is None:
            return None
        return self._gate.check(
            Unit(
                product=device.product,
                station=request.station_id or "",
                work_order=device.work_order_id or "",
                serial=device.serial,
                chip_id=device.chip_id,
                public_key_pem=csr.public_key_pem,
                operation="reenroll",
            )
        )

    def _reissue(
        self,
        request: ReenrollmentRequest,
        csr: ParsedCsr,
        device: DeviceRecord,
        hook: GateVerdict | None,
        now: datetime,
    ) -> EnrollmentResult:
        cert = self._issuer.issue_device(
            public_key=csr.public_key,
            product_serial=device.serial,
            chip_id=device.chip_id,
            now=now,
            product=device.product,
            policy_oids=_policy_oids(device)
            if csr.key_fingerprint == device.key_fingerprint
            else (),
        )
        renewed = replace(
            device,
            key_fingerprint=csr.key_fingerprint,
            public_key_der=csr.public_key_der,
            cert_serial=format(cert.serial_number, "x"),
            cert_der=cert.public_bytes(Encoding.DER),
        )
        with self._store.transaction() as tx:
            if not tx.replace_certificate(
                renewed, superseded_cert_serial=device.cert_serial, now=now
            ):
                raise ConflictError(
                    f"unit {device.serial} changed while its certificate was re-issued; retry",
                    code="reenroll_conflict",
                )
            tx.audit(
                AuditEvent(
                    event="reenrollment",
                    outcome="ok",
                    station_id=request.station_id,
                    serial=device.serial,
                    detail={
                        "chip_id": device.chip_id,
                        "key_fingerprint": csr.key_fingerprint,
                        "new_key": str(csr.key_fingerprint != device.key_fingerprint).lower(),
                        "cert_serial": renewed.cert_serial,
                        "superseded_cert_serial": device.cert_serial,
                        "via": "station" if request.station_id else "device",
                        **(hook.audit_detail() if hook else {}),
                    },
                ),
                now,
            )
        return EnrollmentResult(renewed, tuple(self._issuer.chain()), created=True)


def _policy_oids(device: DeviceRecord) -> tuple[str, ...]:
    """The certificate policies of the unit's current certificate (its genuine-SE proof
    stands for the same key)."""
    try:
        ext = device.certificate.extensions.get_extension_for_class(x509.CertificatePolicies)
    except x509.ExtensionNotFound:
        return ()
    return tuple(p.policy_identifier.dotted_string for p in ext.value)
