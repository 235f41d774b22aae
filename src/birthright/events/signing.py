"""Signing webhook deliveries with the service's event key (ES256, ADR 0012).

The layout follows Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) with an asymmetric scheme: the signed content is
``{event id}.{unix seconds}.{body}``, signed with ECDSA P-256 / SHA-256, sent as
``webhook-signature: es256,<base64 DER signature>``. Receivers need only the public key
(``GET /v1/event-signing-key``): no shared secret per subscriber sits in our database.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.attest.result_signing import key_id

#: Where the event key lives in the workspace (attest/keys.py layout).
EVENT_KEY = ("event-signing-key", "event-signing-passphrase")
SCHEME = "es256"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
KEY_ID_HEADER = "webhook-key-id"


def signed_content(event_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{event_id}.{timestamp}.".encode() + body


class EventSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key).hex()

    def headers(self, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
        """The signature headers of one delivery attempt made at ``now``."""
        timestamp = int(now.timestamp())
        signature = self._key.sign(
            signed_content(event_id, timestamp, body), ec.ECDSA(hashes.SHA256())
        )
        return {
            ID_HEADER: event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"{SCHEME},{base64.b64encode(signature).decode()}",
            KEY_ID_HEADER: self.kid,
        }

    def __repr__(self) -> str:
        return f"EventSigner(kid={self.kid!r})"
