"""The statement a chip's vendor attestation key signs over a new identity key.

``VendorStatement.encode()`` gives canonical JSON; the attestation key signs
``SIGNING_CONTEXT + statement`` with ECDSA-SHA256, so the signature can never be mistaken
for one over any other structure (a CSR, evidence, a firmware manifest). Shared by the
driver that produces it (``birthright.se.attestation``) and the verifier that checks it.

``key`` records the identity private key's PKCS#11 attributes as the token reports them:
part of what the chip vouches for is that the key was generated on it (LOCAL), is SENSITIVE
and was never EXTRACTABLE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PURPOSE = "birthright.se-vendor-attestation"
VERSION = 1
SIGNING_CONTEXT = b"birthright se-vendor attestation v1\x00"
MAX_STATEMENT_BYTES = 1024

#: The identity key attributes a genuine chip must report, and the value each must have.
REQUIRED_KEY_FLAGS: Mapping[str, bool] = {
    "sensitive": True,
    "always_sensitive": True,
    "extractable": False,
    "never_extractable": True,
    "local": True,
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {"purpose", "version", "chip_id", "identity_spki_sha256", "key"}


class StatementError(ValueError):
    """The statement bytes are not a well-formed v1 statement."""


@dataclass(frozen=True)
class VendorStatement:
    chip_id: str
    #: Hex SHA-256 of the identity key's SubjectPublicKeyInfo (DER).
    identity_spki_sha256: str
    key_flags: Mapping[str, bool]

    def encode(self) -> bytes:
        body = {
            "purpose": PURPOSE,
            "version": VERSION,
            "chip_id": self.chip_id,
            "identity_spki_sha256": self.identity_spki_sha256,
            "key": dict(sorted(self.key_flags.items())),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> VendorStatement:
        if len(data) > MAX_STATEMENT_BYTES:
            raise StatementError(f"the statement exceeds {MAX_STATEMENT_BYTES} bytes")
        try:
            body: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise StatementError("the statement is not UTF-8 JSON") from e
        if not isinstance(body, dict) or set(body) != _FIELDS:
            raise StatementError(f"the statement must hold exactly {sorted(_FIELDS)}")
        if body["purpose"] != PURPOSE or body["version"] != VERSION:
            raise StatementError(f"the statement is not a {PURPOSE} v{VERSION} statement")
        chip_id, digest, flags = body["chip_id"], body["identity_spki_sha256"], body["key"]
        if not isinstance(chip_id, str) or not 0 < len(chip_id) <= 128:
            raise StatementError("the statement's chip_id is not a short string")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise StatementError("identity_spki_sha256 is not 64 lower-case hex digits")
        if not isinstance(flags, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in flags.items()
        ):
            raise StatementError("the statement's key attributes are not name → boolean")
        return cls(chip_id=chip_id, identity_spki_sha256=digest, key_flags=flags)

    def weak_flags(self) -> list[str]:
        """Required attributes that are missing or have the wrong value."""
        return [
            f"{name}={self.key_flags.get(name)}"
            for name, wanted in REQUIRED_KEY_FLAGS.items()
            if self.key_flags.get(name) is not wanted
        ]


def signed_bytes(statement: bytes) -> bytes:
    """The exact bytes the attestation key signs."""
    return SIGNING_CONTEXT + statement
