"""Revocation records and recall selections. Frozen: checked once when built, trusted after."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from cryptography import x509

from birthright.errors import InputError


class Reason(Enum):
    """RFC 5280 CRLReason values that make sense for a device certificate (RFC names)."""

    unspecified = "unspecified"
    keyCompromise = "keyCompromise"
    affiliationChanged = "affiliationChanged"
    superseded = "superseded"
    cessationOfOperation = "cessationOfOperation"
    certificateHold = "certificateHold"
    privilegeWithdrawn = "privilegeWithdrawn"

    @classmethod
    def parse(cls, value: str) -> Reason:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InputError(
                f"unknown revocation reason {value!r}; use one of {names}", code="bad_reason"
            ) from None

    @property
    def final(self) -> bool:
        """Every reason but certificateHold is for good."""
        return self is not Reason.certificateHold

    @property
    def device_status(self) -> str:
        return "revoked" if self.final else "on_hold"

    @property
    def flag(self) -> x509.ReasonFlags:
        """The ``cryptography`` value for CRL entries and OCSP answers."""
        return _FLAGS[self]

    @classmethod
    def from_flag(cls, flag: x509.ReasonFlags) -> Reason:
        return next(r for r, f in _FLAGS.items() if f is flag)


_FLAGS = {
    Reason.unspecified: x509.ReasonFlags.unspecified,
    Reason.keyCompromise: x509.ReasonFlags.key_compromise,
    Reason.affiliationChanged: x509.ReasonFlags.affiliation_changed,
    Reason.superseded: x509.ReasonFlags.superseded,
    Reason.cessationOfOperation: x509.ReasonFlags.cessation_of_operation,
    Reason.certificateHold: x509.ReasonFlags.certificate_hold,
    Reason.privilegeWithdrawn: x509.ReasonFlags.privilege_withdrawn,
}


@dataclass(frozen=True)
class DeviceState:
    """What revocation needs to know about one enrolled unit."""

    serial: str
    cert_serial: str  # lowercase hex, as stored at issuance
    status: str  # "active" | "revoked" | "on_hold"


@dataclass(frozen=True)
class Revocation:
    cert_serial: str
    serial: str
    revoked_at: datetime
    reason: Reason
    recall_id: str | None = None
    released_at: datetime | None = None

    @property
    def in_force(self) -> bool:
        return self.released_at is None


class RevokedEntry(NamedTuple):
    """One line of the CRL: a tuple, since a fleet's CRL has millions of them."""

    cert_serial: str  # lowercase hex
    revoked_at: datetime
    reason: Reason


@dataclass(frozen=True)
class CertStatus:
    """The answer for one certificate serial: good, revoked (with time and reason) or unknown."""

    state: str  # "good" | "revoked" | "unknown"
    revoked_at: datetime | None = None
    reason: Reason | None = None


MAX_SERIALS = 10_000
_FIELDS = (
    "product",
    "work_order_id",
    "site",
    "line",
    "station_id",
    "serials",
    "serial_first",
    "serial_last",
    "enrolled_since",
    "enrolled_until",
    "firmware_versions",
)


@dataclass(frozen=True)
class Selection:
    """Which units a recall targets: every given criterion must hold (AND).

    ``serial_first``/``serial_last`` compare product serials as strings, which orders
    serials of one prefix and fixed width (``BRT00000001`` …) numerically.
    ``enrolled_since`` is inclusive, ``enrolled_until`` exclusive. ``firmware_versions``
    match the version each unit last reported in an attestation whose signature and chain
    verified (a unit that never attested has no known version). ``all`` must be given
    explicitly to select every unit.
    """

    product: str | None = None
    work_order_id: str | None = None
    site: str | None = None
    line: str | None = None
    station_id: str | None = None
    serials: tuple[str, ...] = ()
    serial_first: str | None = None
    serial_last: str | None = None
    enrolled_since: datetime | None = None
    enrolled_until: datetime | None = None
    #: Units whose last authenticated attestation reported one of these firmware versions.
    firmware_versions: tuple[str, ...] = ()
    all: bool = False

    def __post_init__(self) -> None:
        if len(self.serials) > MAX_SERIALS:
            raise InputError(
                f"a selection lists at most {MAX_SERIALS} serials", code="selection_too_large"
            )
        for when in (self.enrolled_since, self.enrolled_until):
            if when is not None and when.tzinfo is None:
                raise InputError("enrolment times need a time zone", code="bad_selection")
        if (
            self.serial_first is not None
            and self.serial_last is not None
            and self.serial_first > self.serial_last
        ):
            raise InputError("serial range is empty (first > last)", code="bad_selection")
        if (
            self.enrolled_since is not None
            and self.enrolled_until is not None
            and self.enrolled_since >= self.enrolled_until
        ):
            raise InputError("time window is empty (since >= until)", code="bad_selection")
        if self.has_criteria and self.all:
            raise InputError("`all` cannot be combined with criteria", code="bad_selection")
        if not self.has_criteria and not self.all:
            raise InputError(
                "a recall needs at least one criterion, or all=true to select every unit",
                code="recall_needs_all",
            )

    @property
    def has_criteria(self) -> bool:
        return any(getattr(self, f) not in (None, ()) for f in _FIELDS)

    def as_dict(self) -> dict[str, Any]:
        """Canonical form: only the criteria given, times in ISO 8601 UTC, serials sorted."""
        out: dict[str, Any] = {}
        for f in _FIELDS:
            value = getattr(self, f)
            if value in (None, ()):
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = sorted(value)
            out[f] = value
        if self.all:
            out["all"] = True
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Selection:
        """Rebuild from ``as_dict`` output (the stored recall)."""
        values = dict(data)
        for f in ("enrolled_since", "enrolled_until"):
            if values.get(f) is not None:
                values[f] = datetime.fromisoformat(values[f])
        values["serials"] = tuple(values.get("serials", ()))
        values["firmware_versions"] = tuple(values.get("firmware_versions", ()))
        return cls(**values)


def matched_digest(cert_serials: Iterable[str]) -> str:
    """SHA-256 over the sorted certificate serials: binds a preview to an exact set."""
    h = hashlib.sha256()
    for s in sorted(cert_serials):
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Match:
    """The active units a selection matches now, up to ``cutoff`` (highest device row id)."""

    cutoff: int
    cert_serials: tuple[str, ...]
    sample: tuple[str, ...]  # product serials, at most SAMPLE_SIZE


@dataclass(frozen=True)
class Recall:
    recall_id: str
    token_hash: str
    selection: Selection
    reason: Reason
    count: int
    matched_digest: str
    device_id_cutoff: int
    created_at: datetime
    expires_at: datetime
    executed_at: datetime | None = None


@dataclass(frozen=True)
class RecallPreview:
    recall_id: str
    token: str  # shown once; only its hash is stored
    count: int
    sample: tuple[str, ...]
    selection: Selection
    reason: Reason
    expires_at: datetime


@dataclass(frozen=True)
class RecallResult:
    recall_id: str
    revoked: int
    reason: Reason


@dataclass(frozen=True)
class PublishedCrl:
    der: bytes
    number: int
    this_update: datetime
    next_update: datetime

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the DER, hex (for an ETag): computed once per CRL, not per download."""
        return hashlib.sha256(self.der).hexdigest()


@dataclass(frozen=True)
class CrlState:
    """The CRL counter and the cached latest CRL (None before the first one)."""

    number: int
    dirty: bool
    cached: PublishedCrl | None
