"""Why enrollment refuses, with stable codes; and which refusals are security events."""

from __future__ import annotations

from birthright.errors import ConflictError, NotFoundError, TrustError


class StationRefused(TrustError):
    code = "station_unknown"


#: Refusals that are evidence of an attack or a broken line, not just a bad request.
SECURITY_EVENTS = {
    "key_shared": "a public key already enrolled was presented again (shared secret)",
    "chip_enrolled": "a chip id already enrolled was presented again (cloned or reused chip)",
    "serial_enrolled": "an enrolled serial was claimed again with another key",
    "chip_reserved_elsewhere": "a chip was presented by a second station or work order",
    "serial_chip_mismatch": "a serial reserved for one chip was claimed for another",
    "serial_not_reserved": "a serial the backend never handed this station was claimed",
    "csr_signature_invalid": "a CSR without proof of possession was presented",
    "key_invalid": "a public key that fails point validation was presented",
    "station_unknown": "an unregistered station tried to enroll",
    "station_suspended": "a suspended station tried to enroll",
    "station_revoked": "a revoked station tried to enroll",
    "se_not_genuine": "an identity key not proven to live in a genuine secure element was "
    "presented (software key, counterfeit part or forged vendor proof)",
}


class EnrollmentRefused(ConflictError):
    code = "enrollment_refused"


class QuotaExhausted(ConflictError):
    code = "quota_exhausted"


class WorkOrderRefused(ConflictError):
    code = "work_order_refused"


class WorkOrderUnknown(NotFoundError):
    code = "work_order_unknown"
