"""TPM 2.0 structures parsed from untrusted bytes, and the quote and certify checks, in pure
Python: built here byte by byte as the TPM 2.0 Library (Part 2) lays them out."""

from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.errors import InputError
from birthright.tpm.quote import (
    FIRMWARE_PCR,
    certify_qualifying_data,
    check_certify,
    check_quote,
    expected_pcr_digest,
    quote_qualifying_data,
)
from birthright.tpm.wire import (
    FIXED_PARENT,
    FIXED_TPM,
    RESTRICTED,
    SENSITIVE_DATA_ORIGIN,
    SIGN,
    TPM_GENERATED_VALUE,
    EccPublic,
    TpmStructureError,
    parse_attest,
    parse_public,
    parse_signature,
)


def b2(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def public_area(key: ec.EllipticCurvePublicKey, attributes: int) -> bytes:
    n = key.public_numbers()
    return (
        struct.pack(">HHI", 0x0023, 0x000B, attributes)
        + b2(b"")
        + struct.pack(">HHHHH", 0x0010, 0x0018, 0x000B, 0x0003, 0x0010)
        + b2(n.x.to_bytes(32, "big"))
        + b2(n.y.to_bytes(32, "big"))
    )


def attest_header(kind: int, extra: bytes) -> bytes:
    return struct.pack(">IH", TPM_GENERATED_VALUE, kind) + b2(b"signer") + b2(extra) + bytes(25)


def quote(extra: bytes, pcrs: int, digest: bytes) -> bytes:
    bitmap = (1 << pcrs).to_bytes(3, "little")
    return attest_header(0x8018, extra) + struct.pack(">IHB", 1, 0x000B, 3) + bitmap + b2(digest)


def certify(extra: bytes, name: bytes) -> bytes:
    return attest_header(0x8017, extra) + b2(name) + b2(b"qualified")


def tpm_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return (
        struct.pack(">HH", 0x0018, 0x000B) + b2(r.to_bytes(32, "big")) + b2(s.to_bytes(32, "big"))
    )


AK_BITS = RESTRICTED | SIGN | FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN


@pytest.fixture
def ak() -> tuple[ec.EllipticCurvePrivateKey, EccPublic]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, parse_public(public_area(key.public_key(), AK_BITS))


MEASUREMENT = hashlib.sha256(b"firmware").digest()


def test_a_public_area_parses_with_its_attributes_key_and_name() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    area = public_area(key, AK_BITS)
    parsed = parse_public(area)
    assert parsed.public_key == key and parsed.has(RESTRICTED, FIXED_TPM)
    assert parsed.name == b"\x00\x0b" + hashlib.sha256(area).digest()


def test_a_valid_quote_passes_and_each_wrong_part_is_named(
    ak: tuple[ec.EllipticCurvePrivateKey, EccPublic],
) -> None:
    key, public = ak

    def check(
        attest: bytes, *, signer: ec.EllipticCurvePrivateKey = key, nonce: str = "n0nce-1"
    ) -> str:
        return check_quote(
            attest=attest, signature=tpm_sign(signer, attest), ak=public, nonce=nonce,
            measurement=MEASUREMENT,
        ).outcome  # fmt: skip

    good = quote(quote_qualifying_data("n0nce-1"), FIRMWARE_PCR, expected_pcr_digest(MEASUREMENT))
    assert check(good) == "ok"
    assert check(good, nonce="another") == "nonce_mismatch"
    assert check(good, signer=ec.generate_private_key(ec.SECP256R1())) == "signature_invalid"
    assert check(quote(quote_qualifying_data("n0nce-1"), 7, expected_pcr_digest(MEASUREMENT))) == (
        "pcr_selection"
    )
    other = expected_pcr_digest(hashlib.sha256(b"other firmware").digest())
    assert check(quote(quote_qualifying_data("n0nce-1"), FIRMWARE_PCR, other)) == "pcr_mismatch"
    assert check(certify(quote_qualifying_data("n0nce-1"), b"x")) == "malformed"


def test_certify_binds_the_key_and_the_activation_secret(
    ak: tuple[ec.EllipticCurvePrivateKey, EccPublic],
) -> None:
    key, public = ak
    identity = parse_public(
        public_area(ec.generate_private_key(ec.SECP256R1()).public_key(), SIGN | FIXED_TPM)
    )
    secret = b"s" * 32
    good = certify(certify_qualifying_data(secret), identity.name)
    assert (
        check_certify(
            attest=good, signature=tpm_sign(key, good), ak=public, certified=identity, secret=secret
        )
        is None
    )
    wrong_secret = check_certify(
        attest=good, signature=tpm_sign(key, good), ak=public, certified=identity, secret=b"x"
    )
    assert wrong_secret is not None and "credential challenge" in wrong_secret
    other = certify(certify_qualifying_data(secret), public.name)
    named_other = check_certify(
        attest=other, signature=tpm_sign(key, other), ak=public, certified=identity, secret=secret
    )
    assert named_other is not None and "another key" in named_other


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\x54\x43\x47", quote(b"x", 0, b"d")[:-1], quote(b"x", 0, b"d") + b"\0"],
    ids=["empty", "header-only", "truncated", "trailing"],
)
def test_truncated_or_padded_structures_are_refused(data: bytes) -> None:
    with pytest.raises(TpmStructureError):
        parse_attest(data)


def _mutated(base: bytes, at: int, patch: bytes) -> bytes:
    return base[:at] + patch + base[at + 1 :]


VALID_QUOTE = quote(b"x" * 32, 0, b"d" * 32)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=300)
    | st.builds(_mutated, st.just(VALID_QUOTE), st.integers(0, 80), st.binary(max_size=3))
)
def test_the_parsers_raise_only_input_errors_on_any_bytes(data: bytes) -> None:
    for parse in (parse_attest, parse_public, parse_signature):
        with contextlib.suppress(InputError):
            parse(data)
