"""Small value types shared by every layer."""

from __future__ import annotations

from typing import NewType

ProductSerial = NewType("ProductSerial", str)
ChipId = NewType("ChipId", str)
StationId = NewType("StationId", str)
Nonce = NewType("Nonce", str)
