"""The policy-hook protocol, pure: the query we send, and the signed answer we accept.

The backend POSTs a ``HookQuery`` as JSON. The hook answers
``{"request_id", "nonce", "decision": "allow"|"refuse", "reason", "signature"}`` where
``signature`` is base64 of a DER ECDSA-P256-SHA256 signature by the hook's key over
``answer_message``: the canonical JSON (sorted keys, no spaces, UTF-8) of the four other
fields. The answer must echo this query's request id and nonce, so an answer recorded for one
query cannot be replayed for another. Anything else — a bad signature, a stale or foreign
answer, malformed JSON, an unknown decision — is ``PolicyHookUnavailable``: the hook is not
speaking for this request, and enrollment fails closed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import TrustError

#: The largest answer read from a hook.
MAX_ANSWER_BYTES = 8 * 1024
MAX_REASON = 500
DECISIONS = frozenset({"allow", "refuse"})


class PolicyHookRefused(TrustError):
    """The product's policy hook refused this unit; the message carries the hook's reason."""

    code = "policy_hook_refused"


class PolicyHookUnavailable(TrustError):
    """No valid answer from the hook in time (down, slow, unsigned, replayed, malformed):
    enrollment fails closed. Retrying may succeed once the hook answers."""

    code = "policy_hook_unavailable"
    http_status = 503


@dataclass(frozen=True)
class HookConfig:
    product: str
    url: str
    public_key: ec.EllipticCurvePublicKey
    timeout_ms: int


@dataclass(frozen=True)
class HookQuery:
    """What the hook is told about the unit about to be issued an identity."""

    request_id: str
    nonce: str
    timestamp: str
    product: str
    station: str
    work_order: str
    serial: str
    chip_id: str
    #: SubjectPublicKeyInfo, PEM.
    public_key: str
    #: ``enroll`` or ``reenroll``.
    operation: str = "enroll"

    def to_json(self) -> bytes:
        return canonical_json(vars(self))


@dataclass(frozen=True)
class HookAnswer:
    decision: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def canonical_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def answer_message(request_id: str, nonce: str, decision: str, reason: str) -> bytes:
    """The exact bytes a hook signs."""
    return canonical_json(
        {"request_id": request_id, "nonce": nonce, "decision": decision, "reason": reason}
    )


def sign_answer(
    key: ec.EllipticCurvePrivateKey, query: dict[str, Any], decision: str, reason: str
) -> dict[str, str]:
    """A hook's signed answer to ``query`` (the reference hook and the tests use it)."""
    rid, nonce = str(query["request_id"]), str(query["nonce"])
    signature = key.sign(answer_message(rid, nonce, decision, reason), ec.ECDSA(hashes.SHA256()))
    return {
        "request_id": rid,
        "nonce": nonce,
        "decision": decision,
        "reason": reason,
        "signature": base64.b64encode(signature).decode(),
    }


def parse_answer(config: HookConfig, query: HookQuery, body: bytes) -> HookAnswer:
    """Check an untrusted answer body against the query and the hook's key."""
    if len(body) > MAX_ANSWER_BYTES:
        raise _unavailable(config, f"answered {len(body)} bytes (limit {MAX_ANSWER_BYTES})")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _unavailable(config, "answered something that is not JSON") from e
    if not isinstance(data, dict):
        raise _unavailable(config, "answered JSON that is not an object")
    fields = {k: data.get(k) for k in ("request_id", "nonce", "decision", "reason", "signature")}
    if not all(isinstance(v, str) for v in fields.values()):
        raise _unavailable(
            config, "answer lacks request_id, nonce, decision, reason or signature as strings"
        )
    rid, nonce, decision, reason, sig = (str(v) for v in fields.values())
    try:
        signature = base64.b64decode(sig, validate=True)
        config.public_key.verify(
            signature, answer_message(rid, nonce, decision, reason), ec.ECDSA(hashes.SHA256())
        )
    except (binascii.Error, ValueError, InvalidSignature) as e:
        raise _unavailable(config, "answer is not signed by the hook's registered key") from e
    if (rid, nonce) != (query.request_id, query.nonce):
        raise _unavailable(config, "answer is for another request (replayed or stale)")
    if decision not in DECISIONS:
        raise _unavailable(config, f"answer has an unknown decision {decision[:32]!r}")
    return HookAnswer(decision, reason[:MAX_REASON])


def _unavailable(config: HookConfig, what: str) -> PolicyHookUnavailable:
    return PolicyHookUnavailable(
        f"the policy hook of product {config.product} {what}; enrollment fails closed"
    )
