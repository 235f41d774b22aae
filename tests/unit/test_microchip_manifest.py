"""Microchip Trust Platform manifests: verified entries in, tampered or foreign ones refused."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.demo.vendor import Vendor, make_vendor
from birthright.reconcile.manifests import ChipDelivery, ManifestError, ManifestTooLarge, Parsed
from birthright.reconcile.microchip import (
    ManifestSigner,
    SignerInvalid,
    b64url,
    parse_microchip_manifest,
)

NOW = datetime(2026, 11, 27, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return make_vendor(NOW)


@pytest.fixture(scope="module")
def signer(vendor: Vendor) -> ManifestSigner:
    return ManifestSigner.from_pem(vendor.certificate_pem)


def parse(
    entries: Any, signer: ManifestSigner, *, max_bytes: int = 1 << 20
) -> Parsed[ChipDelivery]:
    if isinstance(entries, bytes):
        data = entries
    else:  # one entry per line: entry k starts on line k + 1
        data = ("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]").encode()
    return parse_microchip_manifest(io.BytesIO(data), signer, delivered_at=NOW, max_bytes=max_bytes)


def _reencode(entry: dict[str, Any], field: str, change: dict[str, Any]) -> dict[str, Any]:
    """The entry with one base64url JSON part changed, signature left as it was."""
    body = json.loads(base64.urlsafe_b64decode(entry[field] + "=="))
    body.update(change)
    return {**entry, field: b64url(json.dumps(body).encode())}


def test_verified_entries_become_deliveries_keyed_by_uppercase_unique_id(
    vendor: Vendor, signer: ManifestSigner
) -> None:
    parsed = parse([vendor.entry("0123ABCDEF01234501"), vendor.entry("0123abcdef01234502")], signer)
    assert parsed.errors == ()
    assert [(r.vendor, r.chip_id, r.delivered_at) for r in parsed.records] == [
        ("Microchip", "0123ABCDEF01234501", NOW),
        ("Microchip", "0123ABCDEF01234502", NOW),
    ]


def test_the_general_serialization_with_one_signature_is_accepted(
    vendor: Vendor, signer: ManifestSigner
) -> None:
    flat = vendor.entry("0123aa")
    general = {
        "payload": flat["payload"],
        "signatures": [
            {
                "protected": flat["protected"],
                "header": flat["header"],
                "signature": flat["signature"],
            }
        ],
    }
    assert [r.chip_id for r in parse([general], signer).records] == ["0123AA"]


def _other_vendor_entry(_vendor: Vendor) -> dict[str, Any]:
    return make_vendor(NOW, "Impostor").entry("0123cc")


def _other_key_same_header(vendor: Vendor) -> dict[str, Any]:
    impostor = make_vendor(NOW, "Impostor")
    return impostor.entry("0123cc", header=vendor.protected_header())


CASES = [
    pytest.param(
        lambda v: _reencode(v.entry("0123bb"), "payload", {"uniqueId": "0123ff"}),
        "entry.signature_invalid",
        id="payload-uniqueId-swapped",
    ),
    pytest.param(
        lambda v: _reencode(v.entry("0123bb"), "payload", {"publicKeySet": {"keys": []}}),
        "entry.signature_invalid",
        id="public-keys-removed",
    ),
    pytest.param(_other_vendor_entry, "entry.wrong_signer", id="signed-by-another-vendor"),
    pytest.param(_other_key_same_header, "entry.signature_invalid", id="forged-header"),
    pytest.param(
        lambda v: v.entry("0123bb", header=v.protected_header(alg="none")),
        "entry.algorithm",
        id="alg-none",
    ),
    pytest.param(
        lambda v: v.entry("0123bb", header=v.protected_header(kid=None, **{"x5t#S256": None})),
        "entry.signer_unknown",
        id="no-signer-named",
    ),
    pytest.param(
        lambda v: v.entry("0123bb", header_unique_id="0123ee"),
        "entry.unique_id_mismatch",
        id="unsigned-header-disagrees",
    ),
    pytest.param(lambda v: v.entry("not-hex"), "entry.unique_id_invalid", id="uniqueId-not-hex"),
    pytest.param(
        lambda v: {**v.entry("0123bb"), "signature": b64url(b"\x01" * 70)},
        "entry.signature_invalid",
        id="signature-wrong-length",
    ),
    pytest.param(
        lambda v: {**v.entry("0123bb"), "payload": "***"}, "entry.malformed", id="payload-not-b64"
    ),
    pytest.param(lambda v: ["not", "an", "object"], "entry.malformed", id="entry-not-object"),
    pytest.param(
        lambda v: {k: x for k, x in v.entry("0123bb").items() if k != "signature"},
        "entry.malformed",
        id="signature-missing",
    ),
]


@pytest.mark.parametrize(("make", "code"), CASES)
def test_a_bad_entry_is_refused_with_its_number_line_and_code(
    vendor: Vendor, signer: ManifestSigner, make: Any, code: str
) -> None:
    entries = [vendor.entry("0123000001"), make(vendor), vendor.entry("0123000003")]
    parsed = parse(entries, signer)
    assert [r.chip_id for r in parsed.records] == ["0123000001", "0123000003"]
    (error,) = parsed.errors
    assert (error.code, error.entry) == (code, 2)
    assert error.line == 3
    assert str(error).startswith("line 3: entry 2: ")


def test_a_repeated_chip_is_refused_as_a_duplicate(vendor: Vendor, signer: ManifestSigner) -> None:
    parsed = parse([vendor.entry("0123aa"), vendor.entry("0123AA")], signer)
    assert [(e.code, e.entry) for e in parsed.errors] == [("entry.duplicate", 2)]


def test_a_key_off_the_curve_is_refused(vendor: Vendor, signer: ManifestSigner) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    entry = vendor.entry("0123aa", [key])
    payload = json.loads(base64.urlsafe_b64decode(entry["payload"] + "=="))
    payload["publicKeySet"]["keys"][0]["y"] = b64url(b"\x01" * 32)
    protected = entry["protected"]
    # Re-sign the bad payload properly: only the key check can refuse it.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    body = b64url(json.dumps(payload).encode())
    r, s = decode_dss_signature(
        vendor.key.sign(f"{protected}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    )
    signed = {**entry, "payload": body, "signature": b64url(r.to_bytes(32) + s.to_bytes(32))}
    (error,) = parse([signed], signer).errors
    assert error.code == "entry.public_key_invalid"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        pytest.param(b'[\n{"payload": "x",\n "protected": }\n]', 3, id="bad-value"),
        pytest.param(b'{"not": "a list"}', 1, id="object-not-array"),
        pytest.param(b"[\n{}\n{}\n]", 3, id="missing-comma"),
        pytest.param(b"[]\n[]", 2, id="trailing-data"),
        pytest.param(b"", 1, id="empty"),
    ],
)
def test_malformed_json_is_refused_whole_with_its_line(
    signer: ManifestSigner, data: bytes, line: int
) -> None:
    with pytest.raises(ManifestError) as refused:
        parse(data, signer)
    assert refused.value.code == "manifest_json"
    assert refused.value.message.startswith(f"line {line}")


def test_an_empty_array_is_an_empty_delivery(signer: ManifestSigner) -> None:
    assert parse(b" [ ] ", signer) == Parsed((), ())


def test_size_cap_and_encoding(vendor: Vendor, signer: ManifestSigner) -> None:
    with pytest.raises(ManifestTooLarge):
        parse([vendor.entry("0123aa")], signer, max_bytes=100)
    with pytest.raises(ManifestError) as refused:
        parse(b"[\xff]", signer)
    assert refused.value.code == "encoding"


def test_the_signer_must_be_an_ec_p256_certificate() -> None:
    with pytest.raises(SignerInvalid):
        ManifestSigner.from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_parse_or_are_refused_cleanly(signer: ManifestSigner, data: bytes) -> None:
    try:
        parsed = parse(data, signer)
    except ManifestError:
        return
    assert parsed.records == ()  # nothing unsigned ever becomes a record
