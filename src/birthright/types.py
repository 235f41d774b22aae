"""Small value types shared by every layer."""

from __future__ import annotations

from typing import NewType

ProductSerial = NewType("ProductSerial", str)
ChipId = NewType("ChipId", str)
StationId = NewType("StationId", str)
Nonce = NewType("Nonce", str)

#: Device-auth nonces carry this prefix, which a URL-safe random nonce never contains: a
#: nonce issued for one purpose (device auth, attestation) cannot serve the other.
DEVICE_AUTH_NONCE_PREFIX = "da."
