"""The PKCS#11 secure element and token-resident keys against a real SoftHSM2."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.types import WrapMixin

from birthright.errors import ConfigError, ConflictError, DeviceError
from birthright.se.base import SecureElement
from birthright.se.pkcs11 import (
    Pkcs11SecureElement,
    generate_token_key,
    init_token,
    load_module,
    load_token_key,
    token_session,
    write_chip_id,
)
from birthright.settings import SOFTHSM2_MODULE
from tests.integration.conftest import TestToken, TokenFactory

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

NOW = datetime.now(UTC)
SHA256 = ec.ECDSA(hashes.SHA256())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, key: ec.EllipticCurvePublicKey, issuer: str, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )


def _chain_for(device_key: ec.EllipticCurvePublicKey) -> list[x509.Certificate]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("root", root_key.public_key(), "root", root_key)
    issuing = _issue("issuing", issuing_key.public_key(), "root", root_key)
    return [_issue("device", device_key, "issuing", issuing_key), issuing, root]


def _open(lib: Pkcs11Lib, token: TestToken) -> Pkcs11SecureElement:
    return Pkcs11SecureElement.open(lib, token_label=token.label, pin=token.pin)


def test_satisfies_the_secure_element_protocol(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        assert isinstance(se, SecureElement)


def test_identity_key_is_born_on_the_token_and_never_leaves(
    pkcs11_lib: Pkcs11Lib, token: TestToken
) -> None:
    with _open(pkcs11_lib, token) as se:
        assert se.identity_public_key() is None
        public_key = se.generate_identity_key()
        assert isinstance(public_key.curve, ec.SECP256R1)
        assert se.identity_public_key() == public_key
        assert se.identity_key_attributes() == {
            "SENSITIVE": True,
            "EXTRACTABLE": False,
            "NEVER_EXTRACTABLE": True,
            "ALWAYS_SENSITIVE": True,
            "LOCAL": True,
        }


def _identity_private_key(session: pkcs11.Session) -> pkcs11.Object:
    keys = list(
        session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: "identity"})
    )
    assert len(keys) == 1
    return keys[0]


def test_private_value_cannot_be_read_unlocked_or_wrapped(
    pkcs11_lib: Pkcs11Lib, token: TestToken
) -> None:
    with _open(pkcs11_lib, token) as se:
        se.generate_identity_key()
        with token_session(pkcs11_lib, token_label=token.label, pin=token.pin) as session:
            private = _identity_private_key(session)
            with pytest.raises(p11e.AttributeSensitive):
                _ = private[Attribute.VALUE]
            with pytest.raises(p11e.PKCS11Error):
                private[Attribute.EXTRACTABLE] = True
            with pytest.raises(p11e.PKCS11Error):
                private[Attribute.SENSITIVE] = False
            wrapping = session.generate_key(
                KeyType.AES, 256, store=False, capabilities=MechanismFlag.WRAP
            )
            assert isinstance(wrapping, WrapMixin)
            assert isinstance(private, pkcs11.PrivateKey)
            with pytest.raises(p11e.KeyUnextractable):
                wrapping.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        assert se.identity_key_attributes()["EXTRACTABLE"] is False


def test_sign_is_ecdsa_sha256_in_der(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        public_key = se.generate_identity_key()
        for message in (b"", b"challenge", bytes(range(256)) * 40):
            signature = se.sign(message)
            assert signature[0] == 0x30  # a DER SEQUENCE, not raw r||s
            public_key.verify(signature, message, SHA256)


def test_identity_signer_builds_a_valid_csr(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        public_key = se.generate_identity_key()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name("BRS-000001"))
            .sign(se.identity_signer(), hashes.SHA256())
        )
        assert csr.is_signature_valid
        assert csr.public_key() == public_key


def test_no_identity_key_yet(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        for operation in (lambda: se.sign(b"x"), se.identity_signer, se.identity_key_attributes):
            with pytest.raises(DeviceError) as caught:
                operation()
            assert caught.value.code == "no_identity_key"


def test_chain_round_trip_and_replace(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        assert se.read_chain() == []
        chain = _chain_for(se.generate_identity_key())
        se.store_chain(chain)
        assert se.read_chain() == chain
        shorter = _chain_for(se.identity_public_key())[:2]  # type: ignore[arg-type]
        se.store_chain(shorter)
        assert se.read_chain() == shorter
    with _open(pkcs11_lib, token) as se:  # persisted on the token
        assert se.read_chain() == shorter


def test_regenerating_replaces_key_and_chain(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with _open(pkcs11_lib, token) as se:
        first = se.generate_identity_key()
        se.store_chain(_chain_for(first))
        second = se.generate_identity_key()
        assert second != first
        assert se.identity_public_key() == second
        assert se.read_chain() == []
        second.verify(se.sign(b"after"), b"after", SHA256)
        with token_session(pkcs11_lib, token_label=token.label, pin=token.pin) as session:
            _identity_private_key(session)  # exactly one identity private key left


def test_chip_id_from_data_object_else_token_serial(
    pkcs11_lib: Pkcs11Lib, new_token: TokenFactory
) -> None:
    programmed, bare = new_token(), new_token()
    write_chip_id(pkcs11_lib, token_label=programmed.label, pin=programmed.pin, chip_id="0123ABCD")
    with _open(pkcs11_lib, programmed) as se:
        assert se.chip_id == "0123ABCD"
    with _open(pkcs11_lib, bare) as se:
        serial = se.chip_id
    with _open(pkcs11_lib, programmed) as se:
        assert serial != se.chip_id
    assert len(serial) == 16  # SoftHSM2's token serial number


def test_sessions_are_shared_per_token(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    first = _open(pkcs11_lib, token)
    public_key = first.generate_identity_key()
    with _open(pkcs11_lib, token) as second:
        first.close()  # must not log the second user out
        public_key.verify(second.sign(b"still here"), b"still here", SHA256)
        with pytest.raises(DeviceError) as caught:
            Pkcs11SecureElement.open(pkcs11_lib, token_label=token.label, pin="not-the-pin")
        assert caught.value.code == "pin_incorrect"


def test_wrong_pin_and_unknown_token(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with pytest.raises(DeviceError) as caught:
        Pkcs11SecureElement.open(pkcs11_lib, token_label=token.label, pin="wrong-pin")
    assert caught.value.code == "pin_incorrect"
    assert "wrong-pin" not in str(caught.value)
    with pytest.raises(DeviceError) as caught:
        Pkcs11SecureElement.open(pkcs11_lib, token_label="no-such-token", pin=token.pin)
    assert caught.value.code == "token_not_found"


def test_token_ca_key_generate_load_and_sign(pkcs11_lib: Pkcs11Lib, token: TestToken) -> None:
    with (
        generate_token_key(
            pkcs11_lib, token_label=token.label, pin=token.pin, key_label="root-ca"
        ) as generated,
        pytest.raises(ConflictError),
    ):
        generate_token_key(pkcs11_lib, token_label=token.label, pin=token.pin, key_label="root-ca")
    with load_token_key(
        pkcs11_lib, token_label=token.label, pin=token.pin, key_label="root-ca"
    ) as loaded:
        assert loaded.public_key() == generated.public_key()
        cert = _issue("root", loaded.public_key(), "root", loaded)
        cert.verify_directly_issued_by(cert)
        with token_session(pkcs11_lib, token_label=token.label, pin=token.pin) as session:
            (private,) = session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: "root-ca"}
            )
            assert private[Attribute.EXTRACTABLE] is False
            assert private[Attribute.NEVER_EXTRACTABLE] is True
    with pytest.raises(DeviceError) as caught:
        load_token_key(pkcs11_lib, token_label=token.label, pin=token.pin, key_label="absent")
    assert caught.value.code == "key_not_found"


def test_signing_from_many_threads(pkcs11_lib: Pkcs11Lib, new_token: TokenFactory) -> None:
    ca_token, device_token = new_token(), new_token()
    signer = generate_token_key(
        pkcs11_lib, token_label=ca_token.label, pin=ca_token.pin, key_label="issuing"
    )
    se = _open(pkcs11_lib, device_token)
    device_key = se.generate_identity_key()
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(150):
                message = f"{worker}-{i}".encode()
                signer.public_key().verify(signer.sign(message, SHA256), message, SHA256)
                device_key.verify(se.sign(message), message, SHA256)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    signer.close()
    se.close()
    assert failures == []


def test_softhsm2_util_token_is_found_by_label(pkcs11_lib: Pkcs11Lib, softhsm_dir: Path) -> None:
    """A token made by another process appears once this process's sessions are closed."""
    make = functools.partial(
        init_token,
        module_path=SOFTHSM2_MODULE,
        conf_path=softhsm_dir / "softhsm2.conf",
        label="made-by-softhsm2-util",
        so_pin="so-pin-123",
        pin="user-pin-123",
    )
    make()
    with pytest.raises(ConflictError):
        make()
    with Pkcs11SecureElement.open(
        pkcs11_lib, token_label="made-by-softhsm2-util", pin="user-pin-123"
    ) as se:
        se.generate_identity_key()


def test_module_is_bound_to_one_softhsm2_conf(pkcs11_lib: Pkcs11Lib, tmp_path: Path) -> None:
    assert load_module(SOFTHSM2_MODULE) is pkcs11_lib
    with pytest.raises(ConfigError) as caught:
        load_module(SOFTHSM2_MODULE, softhsm2_conf=tmp_path / "other.conf")
    assert caught.value.code == "softhsm2_conf_conflict"
