"""Plain values the observability edge reads from the database and the CA."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuotaUse:
    """One open work order's quota: ``minted`` of ``quantity``."""

    work_order_id: str
    product: str
    quantity: int
    minted: int


@dataclass(frozen=True)
class Check:
    """One readiness check: ``ok``, or the stable code and message of what is wrong."""

    name: str
    ok: bool
    code: str = ""
    message: str = ""
