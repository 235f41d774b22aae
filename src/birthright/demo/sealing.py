"""Demo: a per-device secret sealed by the backend and opened on chip (ADR 0010)."""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from birthright.device.sealing import (
    device_serial,
    open_sealed,
    register_key_agreement_key,
    seal_for,
)
from birthright.errors import BirthrightError
from birthright.se.sim import DeviceSet
from birthright.seal.envelope import Envelope, parse


@dataclass(frozen=True)
class SealedDemo:
    opened: list[str]  # "pkcs11", "tpm": kinds whose unit opened its own secret on chip
    other_unit: str  # the code another unit's chip got for the same envelope


def sealed_secrets(
    device_set: DeviceSet, server: str, root_pem: Path, labels: list[str], *, token: str
) -> SealedDemo:
    """Seal a fresh Wi-Fi secret to one PKCS#11 unit and one TPM unit among ``labels``; each
    opens its own on chip; a second unit, given the envelope readdressed to itself, cannot."""
    verify = ssl.create_default_context(cafile=str(root_pem))
    kinds = {d.label: d.kind for d in device_set.devices()}
    opened: list[str] = []
    first: tuple[str, Envelope] | None = None
    for kind in ("pkcs11", "tpm"):
        label = next((x for x in labels if kinds.get(x) == kind), None)
        if label is None:
            continue
        secret = f"ssid=plant-1;psk={secrets.token_urlsafe(12)}".encode()
        with device_set.open(label) as se:
            if kind == "tpm":
                register_key_agreement_key(se, server, verify=verify)
            sealed = seal_for(server, device_serial(se), "wifi", secret, verify=verify, token=token)
            if open_sealed(se, sealed, purpose="wifi") == secret:
                opened.append(kind)
        first = first or (label, parse(sealed))
    other = next((x for x in labels if first and x != first[0] and kinds.get(x) == "pkcs11"), None)
    code = "no second unit"
    if first is not None and other is not None:
        with device_set.open(other) as se:
            moved = Envelope(device_serial(se), "wifi", first[1].enc, first[1].ciphertext)
            try:
                open_sealed(se, moved.to_bytes(), purpose="wifi")
                code = "OPENED (wrong)"
            except BirthrightError as e:
                code = e.code
    return SealedDemo(opened, code)
