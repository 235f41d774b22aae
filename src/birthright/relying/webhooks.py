"""Verifying a birthright event delivery at the receiving service (ADR 0012).

    key = load_pem_public_key(pem_from("GET /v1/event-signing-key"))
    event = verify_delivery(request.headers, await request.body(), key, now=datetime.now(UTC))

``event`` is the parsed body (``id``, ``type``, ``occurred_at``, ``data``). Deliveries are
at least once: keep the ids you have handled and ignore a repeat.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import TrustError
from birthright.events.signing import (
    ID_HEADER,
    SCHEME,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signed_content,
)

#: How far a delivery's timestamp may be from the receiver's clock (replay window).
TOLERANCE = timedelta(minutes=5)


class DeliveryRefused(TrustError):
    code = "event_signature_invalid"


def verify_delivery(
    headers: Mapping[str, str],
    body: bytes,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> dict[str, Any]:
    """The event, once its signature, timestamp and id check out; ``DeliveryRefused`` else."""
    lower = {k.lower(): v for k, v in headers.items()}
    event_id = lower.get(ID_HEADER, "")
    raw_time = lower.get(TIMESTAMP_HEADER, "")
    if not event_id or not raw_time.isdigit():
        raise DeliveryRefused("the delivery lacks its id or timestamp", code="event_malformed")
    timestamp = int(raw_time)
    if abs(now.timestamp() - timestamp) > tolerance.total_seconds():
        raise DeliveryRefused("the delivery's timestamp is outside the window", code="event_stale")
    content = signed_content(event_id, timestamp, body)
    if not any(_verifies(sig, content, public_key) for sig in _signatures(lower)):
        raise DeliveryRefused("no signature on the delivery verifies with this key")
    try:
        event = json.loads(body)
    except ValueError as e:
        raise DeliveryRefused("the body is not JSON", code="event_malformed") from e
    if not isinstance(event, dict) or event.get("id") != event_id:
        raise DeliveryRefused("the body's id is not the signed id", code="event_malformed")
    return event


def _signatures(headers: Mapping[str, str]) -> list[bytes]:
    """Every ``es256,<base64>`` of the (space-separated) signature header: key rotation."""
    found = []
    for item in headers.get(SIGNATURE_HEADER, "").split():
        scheme, _, value = item.partition(",")
        if scheme != SCHEME:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _verifies(signature: bytes, content: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    try:
        key.verify(signature, content, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
