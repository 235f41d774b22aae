"""What a device does to prove itself: fetch a nonce, sign evidence on chip, present it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.attest.eat import EatClaims, build_eat
from birthright.attest.evidence import build_evidence
from birthright.errors import DeviceError, InputError
from birthright.se.base import SecureElement
from birthright.se.tpm import TpmSecureElement
from birthright.station.client import BackendClient

FIRMWARE_FILE = "firmware.json"


@dataclass(frozen=True)
class RunningFirmware:
    """The firmware a device runs: its version and the SHA-256 of its image."""

    version: str
    sha256: bytes

    @classmethod
    def from_image(cls, image: Path, version: str) -> RunningFirmware:
        try:
            digest = hashlib.sha256(image.read_bytes()).digest()
        except OSError as e:
            raise InputError(f"cannot read firmware image {image}", code="image_unreadable") from e
        return cls(version, digest)


def read_firmware_file(devices_dir: Path, label: str) -> RunningFirmware | None:
    """``devices_dir/firmware.json``: ``{"version", "image_sha256"}`` for every simulated
    device, or ``{label: {"version", "image_sha256"}, ...}`` per device; None when absent."""
    path = devices_dir / FIRMWARE_FILE
    if not path.exists():
        return None
    try:
        body = json.loads(path.read_text())
        entry = body if "version" in body else body.get(label)
        if entry is None:
            return None
        return RunningFirmware(str(entry["version"]), bytes.fromhex(entry["image_sha256"]))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputError(f"{path} is not a firmware description", code="firmware_file") from e


def device_serial(se: SecureElement) -> str:
    chain = se.read_chain()
    if not chain:
        raise DeviceError("this device holds no identity certificate yet", code="not_provisioned")
    attrs = chain[0].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not attrs:
        raise DeviceError("the identity certificate names no serial", code="not_provisioned")
    return str(attrs[0].value)


def boot(se: SecureElement, firmware: RunningFirmware) -> None:
    """What a measured boot does: extend the running image's digest into the firmware PCR,
    once per power cycle (a PCR still at reset). Only TPM devices measure."""
    if isinstance(se, TpmSecureElement) and se.firmware_pcr() == bytes(32):
        se.measure_firmware(firmware.sha256)


def _firmware_quote(
    se: SecureElement, firmware: RunningFirmware, nonce: str
) -> tuple[bytes, bytes] | None:
    if not isinstance(se, TpmSecureElement):
        return None
    boot(se, firmware)
    return se.quote(nonce)


def attest(
    se: SecureElement,
    backend: BackendClient,
    *,
    now: datetime,
    firmware: RunningFirmware | None = None,
) -> dict[str, Any]:
    """Run one attestation round; returns the backend's verdict with its checks.

    With ``firmware`` the evidence is an EAT in a COSE_Sign1 signed on chip; without it the
    device can only send identity-only v1 evidence, which products with a firmware allow-list
    refuse (``firmware.unreported``).
    """
    serial = device_serial(se)
    nonce = backend.challenge(serial)
    chain = [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()]
    if firmware is None:
        evidence = build_evidence(nonce=nonce, serial=serial, now=now)
        return backend.attest(evidence=evidence, signature=se.sign(evidence), chain_pem=chain)
    claims = EatClaims(
        nonce=nonce,
        serial=serial,
        firmware_version=firmware.version,
        firmware_sha256=firmware.sha256,
        issued_at=now,
        tpm_quote=_firmware_quote(se, firmware, nonce),
    )
    return backend.attest(evidence=build_eat(claims, se.sign), chain_pem=chain)
