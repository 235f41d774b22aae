"""Session ids, API tokens and CSRF tokens: random, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_TOKEN_PREFIX = "brt_"  # noqa: S105 - a prefix that makes a leaked token greppable


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a session id or token (256 random bits: no KDF needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token bound to one session: derived from its id, so nothing more is stored,
    and unknowable to a page that cannot read the (HttpOnly) session cookie."""
    return hmac.new(session_id.encode(), b"birthright-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_id), presented)
