"""EAT evidence in COSE_Sign1: round trip, every malformed shape, and fuzzing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from birthright.attest.cose import MAX_TOKEN_BYTES, protected_header, sig_structure
from birthright.attest.eat import (
    CLAIM_FW_SHA256,
    CLAIM_IAT,
    CLAIM_NONCE,
    CLAIM_PROFILE,
    CLAIM_SERIAL,
    CLAIM_SWVERSION,
    EAT_PROFILE,
    EatClaims,
    build_eat,
    parse_eat,
)
from birthright.errors import InputError

KEY = ec.generate_private_key(ec.SECP256R1())
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CLAIMS = EatClaims(
    nonce="n" * 43,
    serial="BRT-000001",
    firmware_version="1.4.2",
    firmware_sha256=bytes(range(32)),
    issued_at=NOW,
)


def sign_der(data: bytes) -> bytes:
    return KEY.sign(data, ec.ECDSA(hashes.SHA256()))


def token() -> bytes:
    return build_eat(CLAIMS, sign_der)


def claims_map(**changes: Any) -> dict[int, Any]:
    base: dict[int, Any] = {
        CLAIM_PROFILE: EAT_PROFILE,
        CLAIM_NONCE: CLAIMS.nonce.encode(),
        CLAIM_IAT: int(NOW.timestamp()),
        CLAIM_SWVERSION: [CLAIMS.firmware_version],
        CLAIM_SERIAL: CLAIMS.serial,
        CLAIM_FW_SHA256: CLAIMS.firmware_sha256,
    }
    for key, value in changes.items():
        claim = int(key.removeprefix("c").replace("m", "-"))
        if value is _DROP:
            del base[claim]
        else:
            base[claim] = value
    return base


_DROP = object()


def raw_token(
    *,
    protected: bytes | None = None,
    unprotected: Any = None,
    payload: bytes | None = None,
    signature: bytes | None = None,
    tag: int = 18,
    items: int = 4,
) -> bytes:
    prot = protected if protected is not None else protected_header()
    body = payload if payload is not None else cbor2.dumps(claims_map(), canonical=True)
    sig = signature if signature is not None else _raw_sig(prot, body)
    arr = [prot, {} if unprotected is None else unprotected, body, sig][:items]
    return cbor2.dumps(cbor2.CBORTag(tag, arr), canonical=True)


def _raw_sig(protected: bytes, payload: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(sign_der(sig_structure(protected, payload)))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_round_trip_keeps_every_claim_and_verifies() -> None:
    parsed = parse_eat(token())
    assert parsed.claims == CLAIMS
    assert parsed.token.verify(KEY.public_key())
    assert len(parsed.token.signature) == 64


def test_another_key_does_not_verify() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert not parse_eat(token()).token.verify(other)


def test_a_flipped_payload_bit_breaks_the_signature_or_the_parse() -> None:
    good = raw_token()
    payload = cbor2.dumps(claims_map(c10=b"m" * 43), canonical=True)
    forged = raw_token(payload=payload, signature=cbor2.loads(good).value[3])
    assert not parse_eat(forged).token.verify(KEY.public_key())


def _pad(data: bytes) -> bytes:
    return data + b"\x00"


MALFORMED: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "evidence_malformed"),
    "truncated": (lambda: token()[:-5], "evidence_malformed"),
    "trailing-byte": (lambda: _pad(token()), "evidence_malformed"),
    "too-large": (lambda: b"\xd2" + b"\x00" * MAX_TOKEN_BYTES, "evidence_too_large"),
    "untagged": (lambda: cbor2.dumps(cbor2.loads(token()).value), "evidence_malformed"),
    "wrong-tag": (lambda: raw_token(tag=17), "evidence_malformed"),
    "three-items": (lambda: raw_token(items=3), "evidence_malformed"),
    "unprotected-not-empty": (lambda: raw_token(unprotected={4: b"k"}), "evidence_malformed"),
    "short-signature": (lambda: raw_token(signature=b"\x01" * 63), "evidence_malformed"),
    "der-signature": (lambda: raw_token(signature=b"\x30" * 70), "evidence_malformed"),
    "alg-es384": (
        lambda: raw_token(protected=cbor2.dumps({1: -35}, canonical=True)),
        "evidence_alg_unsupported",
    ),
    "alg-none-text": (
        lambda: raw_token(protected=cbor2.dumps({1: "none"}, canonical=True)),
        "evidence_alg_unsupported",
    ),
    "no-alg": (lambda: raw_token(protected=cbor2.dumps({}, canonical=True)), "evidence_malformed"),
    "protected-extra": (
        lambda: raw_token(protected=cbor2.dumps({1: -7, 3: 0}, canonical=True)),
        "evidence_malformed",
    ),
    "protected-not-canonical": (
        lambda: raw_token(protected=bytes.fromhex("a1013806")),  # -7 in a needless extra byte
        "evidence_malformed",
    ),
    "payload-not-cbor": (lambda: raw_token(payload=b"\xff\xff"), "evidence_malformed"),
    "payload-array": (lambda: raw_token(payload=cbor2.dumps([1])), "evidence_malformed"),
    "claim-missing": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c10=_DROP), canonical=True)),
        "evidence_malformed",
    ),
    "claim-extra": (
        lambda: raw_token(payload=cbor2.dumps({**claims_map(), 2: "x"}, canonical=True)),
        "evidence_malformed",
    ),
    "nonce-text": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c10="n" * 43), canonical=True)),
        "evidence_malformed",
    ),
    "nonce-short": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c10=b"n"), canonical=True)),
        "evidence_malformed",
    ),
    "iat-float": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c6=1.5), canonical=True)),
        "evidence_malformed",
    ),
    "iat-negative": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c6=-1), canonical=True)),
        "evidence_malformed",
    ),
    "swversion-text": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c272="1.0"), canonical=True)),
        "evidence_malformed",
    ),
    "measurement-short": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(m70002=b"\x00" * 20), canonical=True)),
        "evidence_malformed",
    ),
    "serial-bytes": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(m70001=b"BRT"), canonical=True)),
        "evidence_malformed",
    ),
    "wrong-profile": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c265="tag:x,1:y"), canonical=True)),
        "evidence_malformed",
    ),
    "payload-not-canonical": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(), canonical=False)),
        "evidence_malformed",
    ),
    "indefinite-length": (lambda: b"\xd2\x9f\xff", "evidence_malformed"),
    "deep-nesting": (lambda: b"\xd2" + b"\x81" * 100 + b"\x00", "evidence_malformed"),
    "duplicate-claim": (
        lambda: raw_token(
            payload=bytes.fromhex("a20a48") + b"n" * 8 + bytes.fromhex("0a48") + b"m" * 8
        ),
        "evidence_malformed",
    ),
    "bad-datetime-tag": (
        lambda: raw_token(payload=cbor2.dumps(claims_map(c6=cbor2.CBORTag(1, 2**70)))),
        "evidence_malformed",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED), ids=sorted(MALFORMED))
def test_malformed_tokens_are_refused_with_a_stable_code(case: str) -> None:
    make, code = MALFORMED[case]
    with pytest.raises(InputError) as caught:
        parse_eat(make())
    assert caught.value.code == code


def test_the_payload_not_canonical_case_really_differs() -> None:
    assert cbor2.dumps(claims_map(), canonical=False) != cbor2.dumps(claims_map(), canonical=True)


def _mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    buf = bytearray(data)
    for p, v in zip(positions, values, strict=False):
        buf[p % len(buf)] = v
    return bytes(buf)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    for candidate in (data, b"\xd2" + data, b"\xd2\x84" + data):
        with contextlib.suppress(InputError):
            parse_eat(candidate)


GOOD = token()


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.integers(0, len(GOOD) - 1), min_size=1, max_size=6),
    st.lists(st.integers(0, 255), min_size=1, max_size=6),
    st.integers(0, len(GOOD)),
)
def test_mutated_tokens_parse_or_are_refused_cleanly(
    positions: list[int], values: list[int], cut: int
) -> None:
    for candidate in (_mutate(GOOD, positions, values), GOOD[:cut]):
        try:
            parsed = parse_eat(candidate)
        except InputError:
            continue
        parsed.token.verify(KEY.public_key())  # may be False; must not raise


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.integers(), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_well_formed_cbor_of_any_shape_is_refused_cleanly(value: object) -> None:
    for candidate in (
        cbor2.dumps(cbor2.CBORTag(18, value)),
        raw_token(payload=cbor2.dumps(value)),
        raw_token(protected=cbor2.dumps(value)),
    ):
        with contextlib.suppress(InputError):
            parse_eat(candidate)
