"""Firmware manifests (sign, verify, tamper), the allow-list appraisal and signed results."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.attest.firmware import (
    FirmwareManifest,
    FirmwareRelease,
    firmware_findings,
    image_digest,
    sign_manifest,
    verify_manifest_file,
)
from birthright.attest.result_signing import ResultSigner, issued_at, verify_result
from birthright.attest.verdict import AttestationResult, Finding
from birthright.errors import InputError, TrustError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RELEASE_KEY = ec.generate_private_key(ec.SECP256R1())
IMAGE = b"\x7fELF firmware image v1.4.2" * 100
MANIFEST = FirmwareManifest(
    product="BR-TEST", version="1.4.2", image_sha256=image_digest(IMAGE), security_version=3
)


def manifest_file() -> bytes:
    return sign_manifest(MANIFEST, RELEASE_KEY).to_file()


def test_a_signed_manifest_verifies_and_round_trips() -> None:
    signed = verify_manifest_file(manifest_file(), RELEASE_KEY.public_key())
    assert signed.manifest == MANIFEST


def _tamper(field_name: str, value: object) -> bytes:
    outer = json.loads(manifest_file())
    inner = json.loads(base64.b64decode(outer["manifest"]))
    inner[field_name] = value
    outer["manifest"] = base64.b64encode(
        json.dumps(inner, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    return json.dumps(outer).encode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("version", "1.4.3"),
        ("image_sha256", "0" * 64),
        ("security_version", 99),
        ("product", "OTHER"),
    ],
    ids=["version", "measurement", "security-version", "product"],
)
def test_a_tampered_manifest_is_refused(name: str, value: object) -> None:
    with pytest.raises(InputError) as caught:
        verify_manifest_file(_tamper(name, value), RELEASE_KEY.public_key())
    assert caught.value.code == "manifest_signature_invalid"


def test_a_manifest_forged_with_another_key_is_refused() -> None:
    forged = sign_manifest(MANIFEST, ec.generate_private_key(ec.SECP256R1())).to_file()
    with pytest.raises(InputError) as caught:
        verify_manifest_file(forged, RELEASE_KEY.public_key())
    assert caught.value.code == "manifest_signature_invalid"


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"manifest": "***", "signature": ""}', b"{}", b"x" * 5000],
    ids=["empty", "truncated", "array", "bad-base64", "no-fields", "too-large"],
)
def test_a_malformed_manifest_file_is_refused(data: bytes) -> None:
    with pytest.raises(InputError) as caught:
        verify_manifest_file(data, RELEASE_KEY.public_key())
    assert caught.value.code == "manifest_malformed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"product": "has space"},
        {"version": ""},
        {"image_sha256": "ABC"},
        {"security_version": -1},
    ],
    ids=["product", "version", "digest", "security-version"],
)
def test_a_manifest_with_bad_fields_cannot_be_made(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "product": "P",
        "version": "1",
        "image_sha256": "a" * 64,
        "security_version": 0,
        **kwargs,
    }
    with pytest.raises(InputError):
        FirmwareManifest(**fields)  # type: ignore[arg-type]


@dataclass
class MemoryAllowList:
    releases: dict[tuple[str, str], FirmwareRelease] = field(default_factory=dict)

    def has_policy(self, product: str) -> bool:
        return any(p == product for p, _v in self.releases)

    def release(self, product: str, version: str) -> FirmwareRelease | None:
        return self.releases.get((product, version))


def allow_list(status: str = "allowed") -> MemoryAllowList:
    release = FirmwareRelease(
        product="BR-TEST",
        version="1.4.2",
        measurement=bytes.fromhex(MANIFEST.image_sha256),
        security_version=3,
        status=status,  # type: ignore[arg-type]
        published_at=NOW,
        reason="CVE-2026-0001" if status == "blocked" else None,
    )
    return MemoryAllowList({("BR-TEST", "1.4.2"): release})


@pytest.mark.parametrize(
    ("product", "version", "image", "status", "expected"),
    [
        ("BR-TEST", "1.4.2", IMAGE, "allowed", "firmware.allowed"),
        ("BR-TEST", "1.4.2", IMAGE, "blocked", "firmware.blocked"),
        ("BR-TEST", "9.9.9", IMAGE, "allowed", "firmware.unknown"),
        ("BR-TEST", "1.4.2", b"patched", "allowed", "firmware.measurement_mismatch"),
        ("OTHER", "1.4.2", IMAGE, "allowed", "firmware.unknown"),
    ],
    ids=["allowed", "blocked", "unknown-version", "mismatch", "other-product"],
)
def test_firmware_appraisal(
    product: str, version: str, image: bytes, status: str, expected: str
) -> None:
    import hashlib

    findings = firmware_findings(
        product=product,
        version=version,
        measurement=hashlib.sha256(image).digest(),
        allow_list=allow_list(status),
    )
    assert [f.id for f in findings] == [expected]
    assert findings[0].status == ("pass" if expected == "firmware.allowed" else "fail")


def _result(*ids: str, fail: str | None = None) -> AttestationResult:
    findings = [Finding(i.split(".")[0], "pass", i, "") for i in ids]
    if fail:
        findings.append(Finding(fail.split(".")[0], "fail", fail, ""))
    return AttestationResult(serial="BRT-1", findings=tuple(findings), nonce="n" * 43)


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (_result("nonce.valid", "firmware.allowed"), "affirming"),
        (_result("nonce.valid"), "warning"),
        (_result("nonce.valid", fail="firmware.blocked"), "contraindicated"),
    ],
    ids=["affirming", "identity-only", "contraindicated"],
)
def test_ear_status(result: AttestationResult, status: str) -> None:
    assert result.status == status


def test_a_signed_result_verifies_with_the_public_key_only() -> None:
    signer = ResultSigner(ec.generate_private_key(ec.SECP256R1()))
    token = signer.sign(_result("nonce.valid", "firmware.allowed"), NOW)
    claims = verify_result(token, signer.public_key)
    assert claims["ear.status"] == "affirming"
    assert claims["serial"] == "BRT-1"
    assert claims["eat_nonce"] == "n" * 43
    assert issued_at(claims) == NOW
    assert [c["id"] for c in claims["checks"]] == ["nonce.valid", "firmware.allowed"]
    with pytest.raises(TrustError):
        verify_result(token, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(TrustError):
        verify_result(token[:-1] + bytes([token[-1] ^ 1]), signer.public_key)
    with pytest.raises(TrustError):
        verify_result(b"garbage", signer.public_key)


def test_the_simulated_devices_firmware_file(tmp_path: Path) -> None:
    from birthright.device.agent import RunningFirmware, read_firmware_file

    assert read_firmware_file(tmp_path, "dev-1") is None
    digest = image_digest(IMAGE)
    (tmp_path / "firmware.json").write_text(
        json.dumps({"version": "1.4.2", "image_sha256": digest})
    )
    assert read_firmware_file(tmp_path, "dev-1") == RunningFirmware("1.4.2", bytes.fromhex(digest))
    per_device = {"dev-2": {"version": "1.0", "image_sha256": digest}}
    (tmp_path / "firmware.json").write_text(json.dumps(per_device))
    assert read_firmware_file(tmp_path, "dev-1") is None
    assert read_firmware_file(tmp_path, "dev-2") == RunningFirmware("1.0", bytes.fromhex(digest))
    (tmp_path / "firmware.json").write_text("{broken")
    with pytest.raises(InputError):
        read_firmware_file(tmp_path, "dev-2")
