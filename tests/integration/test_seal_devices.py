"""Sealing to one device on real parts: SoftHSM2 tokens (CKM_ECDH1_DERIVE) and swtpm TPMs
(TPM2_ECDH_ZGen with a separate decrypt-only key); the ECDH runs inside the chip."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from birthright.errors import BirthrightError
from birthright.se.sim import DeviceSet, create_devices
from birthright.se.swtpm import power_on
from birthright.se.tpm_ecdh import KA_HANDLE
from birthright.seal.envelope import Envelope, parse, seal
from birthright.seal.opener import KeyAgreement, SealRefused, open_envelope
from birthright.tpm.wire import DECRYPT, FIXED_TPM, SIGN, parse_public

_index = itertools.count(7000, 10)


@pytest.fixture(params=["softhsm2", "tpm"])
def two_devices(
    request: pytest.FixtureRequest, sim_device_set: DeviceSet, tmp_path: Path
) -> Iterator[tuple[KeyAgreement, KeyAgreement]]:
    with ExitStack() as stack:
        if request.param == "softhsm2":
            made = create_devices(
                sim_device_set.directory, 2, pin=sim_device_set.pin, start_index=next(_index)
            )
            devices: list[KeyAgreement] = []
            for device in made:
                token = sim_device_set.open(device.label)
                stack.callback(token.close)
                token.generate_identity_key()
                devices.append(token)
        else:
            made = create_devices(
                tmp_path, 2, pin="unused-for-tpm", kind="tpm", start_index=next(_index)
            )
            devices = [stack.enter_context(power_on(tmp_path, d.label)) for d in made]
        yield devices[0], devices[1]


def _sealed_to(device: KeyAgreement, payload: bytes = b"wifi:psk=hunter2") -> Envelope:
    return seal(device.key_agreement_public_key(), payload, serial="SN-A", purpose="wifi")


def test_a_payload_sealed_to_a_opens_on_a_only(
    two_devices: tuple[KeyAgreement, KeyAgreement],
) -> None:
    a, b = two_devices
    envelope = parse(_sealed_to(a).to_bytes())
    assert open_envelope(envelope, a, serial="SN-A", purpose="wifi") == b"wifi:psk=hunter2"
    with pytest.raises(SealRefused) as refused:
        open_envelope(envelope, b, serial="SN-A", purpose="wifi")
    assert refused.value.code == "seal_refused"


@pytest.mark.parametrize("where", ["ciphertext", "tag", "enc"])
def test_a_tampered_envelope_is_refused(
    two_devices: tuple[KeyAgreement, KeyAgreement], where: str
) -> None:
    a, _ = two_devices
    raw = bytearray(_sealed_to(a).to_bytes())
    header = len(_sealed_to(a).header)
    spot = {"ciphertext": header + 65, "tag": len(raw) - 1, "enc": header + 40}[where]
    raw[spot] ^= 0x01
    with pytest.raises(BirthrightError) as refused:
        open_envelope(parse(bytes(raw)), a, serial="SN-A", purpose="wifi")
    assert refused.value.code in {"seal_refused", "bad_envelope"}


def test_a_header_moved_to_another_serial_or_purpose_is_refused(
    two_devices: tuple[KeyAgreement, KeyAgreement],
) -> None:
    a, _ = two_devices
    sealed = _sealed_to(a)
    for serial, purpose in [("SN-B", "wifi"), ("SN-A", "cloud")]:
        moved = Envelope(serial, purpose, sealed.enc, sealed.ciphertext)
        with pytest.raises(SealRefused):  # the device's own serial/purpose, a forged header
            open_envelope(moved, a, serial=serial, purpose=purpose)
        with pytest.raises(SealRefused) as refused:  # addressed elsewhere
            open_envelope(sealed, a, serial=serial, purpose=purpose)
        assert refused.value.code == "seal_misaddressed"


def test_the_tpm_key_agreement_key_is_decrypt_only_and_separate(tmp_path: Path) -> None:
    [made] = create_devices(tmp_path, 1, pin="unused-for-tpm", kind="tpm", start_index=1)
    with power_on(tmp_path, made.label) as se:
        identity = se.generate_identity_key()
        ka = se.key_agreement_public_key()
        assert ka != identity
        area = se._public_area(KA_HANDLE)
        assert area is not None
        key = parse_public(area)
        assert key.has(DECRYPT, FIXED_TPM) and not key.has(SIGN)
    with power_on(tmp_path, made.label) as se:  # persistent across power cycles
        assert se.key_agreement_public_key() == ka
