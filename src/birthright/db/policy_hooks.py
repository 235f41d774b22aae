"""Per-product policy hooks (ADR 0015), set and cleared by operators, read before issuance."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import PolicyHookRow
from birthright.db.products import PRODUCT
from birthright.db.repository import append_audit, unit_of_work
from birthright.errors import InputError
from birthright.policyhook import HookConfig

MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 10, 10_000


def load_hook_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    """A hook's answer-signing key: an EC P-256 public key, PEM (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise InputError("the hook key is not a PEM public key", code="bad_hook_key") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError("the hook key must be an EC P-256 public key", code="bad_hook_key")
    return key


def check_hook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise InputError(f"not an http(s) URL: {url[:100]!r}", code="bad_hook_url")
    return url


class SqlPolicyHooks:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def set(
        self, product: str, *, url: str, public_key_pem: bytes, timeout_ms: int, now: datetime
    ) -> HookConfig:
        """Install (or replace) ``product``'s hook; audited in the same transaction."""
        if not PRODUCT.match(product):
            raise InputError(f"not a product name: {product!r}", code="bad_product")
        if not MIN_TIMEOUT_MS <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InputError(
                f"the hook's time limit must be {MIN_TIMEOUT_MS}..{MAX_TIMEOUT_MS} ms",
                code="bad_hook_timeout",
            )
        key = load_hook_key(public_key_pem)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        check_hook_url(url)
        with unit_of_work(self._sessions) as s:
            row = s.get(PolicyHookRow, product, with_for_update=True)
            if row is None:
                row = PolicyHookRow(product=product)
                s.add(row)
            row.url, row.public_key_pem, row.timeout_ms, row.updated_at = url, pem, timeout_ms, now
            append_audit(
                s,
                AuditEvent(
                    event="product.policy_hook",
                    outcome="ok",
                    detail={"product": product, "url": url, "timeout_ms": str(timeout_ms)},
                ),
                now,
            )
        return HookConfig(product, url, key, timeout_ms)

    def clear(self, product: str, *, now: datetime) -> bool:
        """Remove ``product``'s hook; whether there was one. Audited."""
        with unit_of_work(self._sessions) as s:
            row = s.get(PolicyHookRow, product, with_for_update=True)
            if row is None:
                return False
            s.delete(row)
            append_audit(
                s,
                AuditEvent(
                    event="product.policy_hook",
                    outcome="ok",
                    detail={"product": product, "cleared": "true"},
                ),
                now,
            )
            return True

    def hook_for(self, product: str) -> HookConfig | None:
        with self._sessions() as s:
            row = s.get(PolicyHookRow, product)
            return _config(row) if row else None

    def list(self) -> list[HookConfig]:
        with self._sessions() as s:
            rows = s.execute(select(PolicyHookRow).order_by(PolicyHookRow.product)).scalars()
            return [_config(r) for r in rows]


def _config(row: PolicyHookRow) -> HookConfig:
    return HookConfig(
        product=row.product,
        url=row.url,
        public_key=load_hook_key(row.public_key_pem.encode()),
        timeout_ms=row.timeout_ms,
    )
