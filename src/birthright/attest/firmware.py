"""Signed firmware releases and the per-product allow-list check. Pure: bytes in, values out.

A release manifest is canonical JSON (sorted keys, no spaces) of
``{type, product, version, image_sha256, security_version}``; the release key (EC P-256, apart
from every CA key) signs those exact bytes with ECDSA-SHA256. The manifest file holds both:
``{"manifest": <base64 of the signed bytes>, "signature": <base64 DER>}``, so verification
never depends on re-serialising.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.attest.verdict import Finding
from birthright.errors import InputError

MANIFEST_TYPE = "birthright-firmware-manifest-v1"
MAX_MANIFEST_FILE_BYTES = 4096
_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
ReleaseStatus = Literal["allowed", "blocked"]


class ManifestMalformed(InputError):
    code = "manifest_malformed"


class ManifestSignatureInvalid(InputError):
    code = "manifest_signature_invalid"


@dataclass(frozen=True)
class FirmwareManifest:
    product: str
    version: str
    image_sha256: str  # lowercase hex
    security_version: int

    def __post_init__(self) -> None:
        if not _NAME.match(self.product) or not _NAME.match(self.version):
            raise ManifestMalformed("product and version must be 1 to 64 of [A-Za-z0-9._+-]")
        if not _SHA256.match(self.image_sha256):
            raise ManifestMalformed("image_sha256 must be 64 lowercase hex digits")
        if type(self.security_version) is not int or not 0 <= self.security_version < 2**31:
            raise ManifestMalformed("security_version must be a non-negative integer")

    def canonical(self) -> bytes:
        body = {
            "type": MANIFEST_TYPE,
            "product": self.product,
            "version": self.version,
            "image_sha256": self.image_sha256,
            "security_version": self.security_version,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedManifest:
    manifest: FirmwareManifest
    signed_bytes: bytes
    signature: bytes  # DER ECDSA-SHA256

    def to_file(self) -> bytes:
        body = {
            "manifest": base64.b64encode(self.signed_bytes).decode(),
            "signature": base64.b64encode(self.signature).decode(),
        }
        return json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True)
class FirmwareRelease:
    """An allow-list entry as published."""

    product: str
    version: str
    measurement: bytes  # SHA-256 of the image
    security_version: int
    status: ReleaseStatus
    published_at: datetime
    reason: str | None = None


class FirmwareAllowList(Protocol):
    def has_policy(self, product: str) -> bool:
        """True once any release of ``product`` is published: firmware evidence is then due."""
        ...

    def release(self, product: str, version: str) -> FirmwareRelease | None: ...


def image_digest(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


def sign_manifest(manifest: FirmwareManifest, key: ec.EllipticCurvePrivateKey) -> SignedManifest:
    data = manifest.canonical()
    return SignedManifest(manifest, data, key.sign(data, ec.ECDSA(hashes.SHA256())))


def verify_manifest_file(data: bytes, key: ec.EllipticCurvePublicKey) -> SignedManifest:
    """Parse a manifest file and check the release signature; ``InputError`` otherwise."""
    if len(data) > MAX_MANIFEST_FILE_BYTES:
        raise ManifestMalformed(f"a manifest file is at most {MAX_MANIFEST_FILE_BYTES} bytes")
    try:
        outer = json.loads(data)
        if not isinstance(outer, dict) or set(outer) != {"manifest", "signature"}:
            raise ManifestMalformed("a manifest file holds exactly manifest and signature")
        signed = base64.b64decode(outer["manifest"], validate=True)
        signature = base64.b64decode(outer["signature"], validate=True)
    except (ValueError, TypeError, binascii.Error) as e:
        raise ManifestMalformed("the manifest file is not valid JSON with base64 fields") from e
    try:
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise ManifestSignatureInvalid("the manifest is not signed by the release key") from e
    manifest = _parse_signed(signed)
    if manifest.canonical() != signed:
        raise ManifestMalformed("the signed manifest is not in canonical form")
    return SignedManifest(manifest, signed, signature)


def _parse_signed(signed: bytes) -> FirmwareManifest:
    try:
        body = json.loads(signed)
    except ValueError as e:
        raise ManifestMalformed("the signed manifest is not JSON") from e
    keys = {"type", "product", "version", "image_sha256", "security_version"}
    if not isinstance(body, dict) or set(body) != keys or body["type"] != MANIFEST_TYPE:
        raise ManifestMalformed(f"the signed manifest is not a {MANIFEST_TYPE}")
    if not all(isinstance(body[k], str) for k in ("product", "version", "image_sha256")):
        raise ManifestMalformed("product, version and image_sha256 must be strings")
    return FirmwareManifest(
        product=body["product"],
        version=body["version"],
        image_sha256=body["image_sha256"],
        security_version=body["security_version"],
    )


def firmware_findings(
    *,
    product: str,
    version: str,
    measurement: bytes,
    allow_list: FirmwareAllowList,
    floor: int | None = None,
) -> Sequence[Finding]:
    """Appraise the claimed firmware against the product's signed allow-list, and against
    ``floor``: the highest security version this unit has already run (anti-rollback)."""
    return release_findings(
        allow_list.release(product, version),
        product=product,
        version=version,
        measurement=measurement,
        floor=floor,
    )


def release_findings(
    release: FirmwareRelease | None,
    *,
    product: str,
    version: str,
    measurement: bytes,
    floor: int | None = None,
) -> Sequence[Finding]:
    """``firmware_findings`` with the allow-list entry of ``product`` ``version`` already
    read (``None``: not published)."""
    if release is None:
        return [
            Finding(
                "firmware",
                "fail",
                "firmware.unknown",
                f"{product} {version} is not a published release",
            )
        ]
    if release.measurement != measurement:
        return [
            Finding(
                "firmware",
                "fail",
                "firmware.measurement_mismatch",
                f"the image measured is not the published {product} {version}",
            )
        ]
    if release.status == "blocked":
        why = f": {release.reason}" if release.reason else ""
        return [Finding("firmware", "fail", "firmware.blocked", f"{version} is blocked{why}")]
    if floor is not None and release.security_version < floor:
        return [
            Finding(
                "firmware",
                "fail",
                "firmware.rollback",
                f"{version} (security version {release.security_version}) is older than the "
                f"security version {floor} this unit already ran: a downgrade",
            )
        ]
    return [
        Finding(
            "firmware",
            "pass",
            "firmware.allowed",
            f"{product} {version} (security version {release.security_version}) is allowed",
        )
    ]
