"""The version-1 sealed envelope: RFC 9180 interop of our receiver, and its parser fuzzed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.errors import InputError
from birthright.seal.envelope import MAGIC, SUITE, Envelope, EnvelopeError, header, parse, seal
from birthright.seal.opener import SealRefused, open_envelope


class SoftwareKey:
    """A software stand-in for a chip's key-agreement key (unit tests only)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        return self._key.exchange(ec.ECDH(), peer)

    def key_agreement_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def hpke_open(self, envelope: Envelope) -> bytes:
        return SUITE.decrypt(envelope.enc + envelope.ciphertext, self._key, info=envelope.header)


def test_our_receiver_and_cryptography_hpke_agree() -> None:
    device = SoftwareKey()
    sealed = parse(
        seal(device.key_agreement_public_key(), b"token", serial="S1", purpose="cloud").to_bytes()
    )
    assert device.hpke_open(sealed) == b"token"  # it is plain RFC 9180 HPKE
    assert open_envelope(sealed, device, serial="S1", purpose="cloud") == b"token"


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    key = SoftwareKey().key_agreement_public_key()
    first, second = (seal(key, b"x", serial="S1", purpose="wifi") for _ in range(2))
    assert first.enc != second.enc and first.ciphertext != second.ciphertext


@pytest.mark.parametrize(
    ("serial", "purpose", "code"),
    [("", "wifi", "bad_serial"), ("S" * 65, "wifi", "bad_serial"),
     ("S1", "Wi Fi", "bad_seal_purpose"), ("S1", "", "bad_seal_purpose")],
    ids=["empty-serial", "long-serial", "bad-purpose", "empty-purpose"],
)  # fmt: skip
def test_bad_addresses_are_refused(serial: str, purpose: str, code: str) -> None:
    with pytest.raises(InputError) as refused:
        header(serial, purpose)
    assert refused.value.code == code


def test_a_payload_too_large_is_refused() -> None:
    key = SoftwareKey().key_agreement_public_key()
    with pytest.raises(InputError, match="64 KiB"):
        seal(key, bytes(64 * 1024 + 1), serial="S1", purpose="wifi")


def test_a_wrong_key_refuses_without_revealing_anything() -> None:
    sealed = seal(SoftwareKey().key_agreement_public_key(), b"s3cret", serial="S1", purpose="wifi")
    with pytest.raises(SealRefused) as refused:
        open_envelope(sealed, SoftwareKey(), serial="S1", purpose="wifi")
    assert "s3cret" not in str(refused.value.as_dict())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_the_parser_parses_or_refuses_cleanly(data: bytes) -> None:
    try:
        envelope = parse(data)
    except EnvelopeError:
        return
    assert envelope.to_bytes() == data


_VALID = seal(SoftwareKey().key_agreement_public_key(), b"payload", serial="S1", purpose="wifi")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_VALID.to_bytes()) - 1), st.integers(1, 255))
def test_any_flipped_byte_is_refused(position: int, flip: int) -> None:
    device = SoftwareKey()
    sealed = seal(device.key_agreement_public_key(), b"payload", serial="S1", purpose="wifi")
    raw = bytearray(sealed.to_bytes())
    raw[position] ^= flip
    with pytest.raises((InputError, SealRefused)):
        open_envelope(parse(bytes(raw)), device, serial="S1", purpose="wifi")


def test_the_magic_is_versioned() -> None:
    assert MAGIC == b"BRS1"
    with pytest.raises(EnvelopeError):
        parse(b"BRS2" + _VALID.to_bytes()[4:])
