"""The device-auth token parser and the offline checks: parse or refuse cleanly, never crash."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.attest.cose import sign1
from birthright.deviceauth.checks import DeviceAuthRefused, check_offline
from birthright.deviceauth.token import DeviceAuthMalformed, build_token, parse_token
from birthright.errors import InputError, TrustError
from tests.integration.test_attestation_api import Unit
from tests.integration.test_device_auth_api import foreign_chain

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def sign(data: bytes) -> bytes:
    return KEY.sign(data, ec.ECDSA(hashes.SHA256()))


def good(**overrides: Any) -> bytes:
    args: dict[str, Any] = {"nonce": "da.n", "serial": "SN1", "audience": "aud", "now": NOW}
    return build_token(**{**args, **overrides}, sign=sign)


def with_claims(claims: object) -> bytes:
    return sign1(cbor2.dumps(claims, canonical=True), sign)


def test_a_good_token_round_trips() -> None:
    parsed = parse_token(good())
    c = parsed.claims
    assert (c.nonce, c.serial, c.audience, c.issued_at) == ("da.n", "SN1", "aud", NOW)
    assert c.expires_at == NOW + timedelta(seconds=120)
    assert parsed.sign1.verify(KEY.public_key())


BASE = {"nonce": "da.n", "serial": "SN1", "aud": "aud", "iat": 1_800_000_000, "exp": 1_800_000_060}


@pytest.mark.parametrize(
    "claims",
    [
        [1, 2],
        {**BASE, "extra": 1},
        {k: v for k, v in BASE.items() if k != "aud"},
        {**BASE, "nonce": ""},
        {**BASE, "serial": "x" * 129},
        {**BASE, "aud": b"bytes"},
        {**BASE, "iat": "1800000000"},
        {**BASE, "exp": 1_800_000_000},
        {**BASE, "exp": 1_800_000_301},
        {**BASE, "iat": True},
        {**BASE, "exp": 2**41},
    ],
    ids=[
        "not-a-map", "extra-claim", "missing-aud", "empty-nonce", "long-serial", "aud-bytes",
        "iat-text", "exp-equals-iat", "lifetime-301s", "iat-bool", "exp-huge",
    ],
)  # fmt: skip
def test_bad_claims_are_malformed(claims: object) -> None:
    with pytest.raises(DeviceAuthMalformed):
        parse_token(with_claims(claims))


@given(st.binary(max_size=600))
def test_random_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    for candidate in (data, b"\xd2" + data, b"\xd2\x84" + data):
        with contextlib.suppress(InputError):
            parse_token(candidate)


GOOD = good()


@given(
    st.lists(st.integers(0, len(GOOD) - 1), min_size=1, max_size=6),
    st.lists(st.integers(0, 255), min_size=1, max_size=6),
    st.integers(0, len(GOOD)),
)
def test_mutated_tokens_parse_or_are_refused_cleanly(
    positions: list[int], values: list[int], cut: int
) -> None:
    mutated = bytearray(GOOD)
    for p, v in zip(positions, values, strict=False):
        mutated[p] = v
    for candidate in (bytes(mutated), GOOD[:cut]):
        try:
            token = parse_token(candidate)
        except InputError:
            continue
        token.sign1.verify(KEY.public_key())  # whatever parses can be checked without crashing


@given(
    st.dictionaries(
        st.sampled_from(["nonce", "serial", "aud", "iat", "exp", "x"]),
        st.one_of(st.integers(), st.text(max_size=140), st.binary(max_size=8), st.none()),
    )
)
@settings(deadline=None)  # each example signs with ECDSA
def test_any_claim_map_parses_or_is_refused_cleanly(claims: dict[str, object]) -> None:
    with contextlib.suppress(InputError):
        parse_token(with_claims(claims))


# -- the offline checks, with a frozen clock ---------------------------------------------------


def _trusting(leaf: x509.Certificate, _i: Sequence[x509.Certificate], _now: datetime) -> None:
    return None


def _untrusting(leaf: x509.Certificate, _i: Sequence[x509.Certificate], _now: datetime) -> None:
    raise TrustError("not our root", code="chain_untrusted")


def _leaf(serial: str = "SN1") -> list[x509.Certificate]:
    pems = foreign_chain(Unit(serial, KEY, []))
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


@pytest.mark.parametrize(
    ("token", "now", "verify", "serial", "code"),
    [
        (good(), NOW + timedelta(seconds=120), _trusting, "SN1", "device_auth_expired"),
        (good(), NOW - timedelta(seconds=31), _trusting, "SN1", "device_auth_expired"),
        (good(audience="other"), NOW, _trusting, "SN1", "device_auth_audience"),
        (good(), NOW, _untrusting, "SN1", "device_untrusted"),
        (good(), NOW, _trusting, "SN2", "device_untrusted"),
        (
            build_token(
                nonce="da.n", serial="SN1", audience="aud", now=NOW,
                sign=lambda d: ec.generate_private_key(ec.SECP256R1()).sign(
                    d, ec.ECDSA(hashes.SHA256())
                ),
            ),
            NOW, _trusting, "SN1", "device_auth_signature_invalid",
        ),
    ],
    ids=["expired", "from-the-future", "audience", "chain", "other-serial", "signature"],
)  # fmt: skip
def test_offline_refusals(token: bytes, now: datetime, verify: Any, serial: str, code: str) -> None:
    with pytest.raises(DeviceAuthRefused) as refused:
        check_offline(
            parse_token(token), _leaf(serial), audience="aud", verify_chain=verify, now=now
        )
    assert refused.value.code == code


def test_offline_checks_pass_a_good_token_within_skew() -> None:
    check_offline(
        parse_token(good()),
        _leaf(),
        audience="aud",
        verify_chain=_trusting,
        now=NOW - timedelta(seconds=29),
    )
