"""Asking a product's policy hook before issuing: look the hook up, ask, check the answer.

``PolicyGate.check`` runs outside any database transaction (the caller makes sure of it): a
slow hook holds a worker thread for at most its time limit, never a row lock.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from birthright.policyhook.model import (
    HookAnswer,
    HookConfig,
    HookQuery,
    PolicyHookRefused,
    PolicyHookUnavailable,
    parse_answer,
)

log = logging.getLogger(__name__)


class HookDirectory(Protocol):
    def hook_for(self, product: str) -> HookConfig | None: ...


class HookTransport(Protocol):
    def post(self, url: str, body: bytes, *, timeout_s: float) -> bytes:
        """POST ``body`` as JSON; the answer body of a 200, or ``PolicyHookUnavailable``."""
        ...


@dataclass(frozen=True)
class Unit:
    """The unit about to be issued an identity, as the hook is told about it."""

    product: str
    station: str
    work_order: str
    serial: str
    chip_id: str
    public_key_pem: str
    operation: str = "enroll"


@dataclass(frozen=True)
class GateVerdict:
    answer: HookAnswer
    request_id: str
    elapsed_ms: float

    def audit_detail(self) -> dict[str, str]:
        return {"policy_hook": self.answer.decision, "policy_hook_request": self.request_id}


class PolicyGate:
    def __init__(
        self,
        *,
        hooks: HookDirectory,
        transport: HookTransport,
        clock: Callable[[], datetime],
    ) -> None:
        self._hooks = hooks
        self._transport = transport
        self._clock = clock

    def check(self, unit: Unit) -> GateVerdict | None:
        """None when the product has no hook; a verdict that allowed; or a refusal
        (``PolicyHookRefused`` with the hook's reason, ``PolicyHookUnavailable``)."""
        config = self._hooks.hook_for(unit.product)
        if config is None:
            return None
        query = HookQuery(
            request_id=str(uuid.uuid4()),
            nonce=secrets.token_urlsafe(24),
            timestamp=self._clock().isoformat(),
            product=unit.product,
            station=unit.station,
            work_order=unit.work_order,
            serial=unit.serial,
            chip_id=unit.chip_id,
            public_key=unit.public_key_pem,
            operation=unit.operation,
        )
        started = time.monotonic()
        body = self._transport.post(config.url, query.to_json(), timeout_s=config.timeout_ms / 1000)
        elapsed = time.monotonic() - started
        if elapsed * 1000 > config.timeout_ms:
            raise PolicyHookUnavailable(
                f"the policy hook of product {unit.product} answered after {elapsed * 1000:.0f} ms,"
                f" over its limit of {config.timeout_ms} ms; enrollment fails closed"
            )
        answer = parse_answer(config, query, body)
        log.info(
            "policy hook product=%s serial=%s decision=%s ms=%.1f",
            unit.product,
            unit.serial,
            answer.decision,
            elapsed * 1000,
        )
        if not answer.allowed:
            reason = answer.reason or "no reason given"
            raise PolicyHookRefused(
                f"the policy hook of product {unit.product} refused serial {unit.serial}: {reason}",
                reason=answer.reason,
            )
        return GateVerdict(answer, query.request_id, elapsed * 1000)
