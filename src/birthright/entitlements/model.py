"""Entitlements: plain values, checked when built."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from birthright.errors import InputError

Kind = Literal["warranty", "subscription"]
KINDS: tuple[Kind, ...] = ("warranty", "subscription")
Status = Literal["pending", "active", "expired", "suspended"]
MAX_TERM = timedelta(days=366 * 10)
_PLAN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_OWNER = re.compile(r"^[\x21-\x7e]{1,128}$")


class EntitlementInvalid(InputError):
    code = "entitlement_invalid"


@dataclass(frozen=True)
class Terms:
    """What is granted: a plan of a kind, from ``starts_on`` to ``ends_on`` inclusive."""

    plan: str
    kind: Kind
    starts_on: date
    ends_on: date

    def __post_init__(self) -> None:
        if not _PLAN.match(self.plan):
            raise EntitlementInvalid("a plan is 1-64 letters, digits, '.', '_' or '-'")
        if self.kind not in KINDS:
            raise EntitlementInvalid(f"kind must be one of {', '.join(KINDS)}")
        if not self.starts_on <= self.ends_on <= self.starts_on + MAX_TERM:
            raise EntitlementInvalid("ends_on must follow starts_on, ten years at most")


def check_owner(owner: str) -> str:
    """An owner reference (an account id, an opaque customer reference): short, printable."""
    if not _OWNER.match(owner):
        raise EntitlementInvalid("an owner reference is 1-128 printable ASCII characters")
    return owner


@dataclass(frozen=True)
class Entitlement:
    serial: str
    terms: Terms
    owner: str
    claimed_at: datetime
    #: The device's status ("active", "revoked", ...) when this was read.
    device_status: str

    def status(self, today: date) -> Status:
        """Suspended with a revoked device; otherwise by date."""
        if self.device_status != "active":
            return "suspended"
        if today < self.terms.starts_on:
            return "pending"
        if today > self.terms.ends_on:
            return "expired"
        return "active"
