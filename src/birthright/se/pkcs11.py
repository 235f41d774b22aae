"""PKCS#11 secure elements and token-resident keys (SoftHSM2 in development, tokens in the field).

Keys are generated on the token as P-256, SENSITIVE and not EXTRACTABLE; they never leave it.
SoftHSM2 has no CKM_ECDSA_SHA256, so the host hashes and the token signs the digest with raw
CKM_ECDSA; its r‖s output is DER-encoded for X.509. Thread safety, the one-wrapper-per-process
rule and shared logged-in sessions are handled in ``birthright.se._p11``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import KDF, Attribute, KeyType, ObjectClass
from pkcs11.types import SignMixin

from birthright.errors import ConflictError, DeviceError, InputError
from birthright.se._p11 import (
    LOCK,
    P256_PARAMS,
    acquire,
    cert_template,
    create_token,
    create_tokens,
    find_one,
    find_token,
    generate_p256,
    guard,
    init_token,
    key_template,
    load_module,
    public_key_of,
    release,
    sign_digest,
    token_session,
    write_softhsm2_conf,
)
from birthright.se.attestation import vendor_proof
from birthright.se.signer import ExternalKeySigner
from birthright.types import ChipId

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

__all__ = [
    "P256_PARAMS",
    "Pkcs11SecureElement",
    "TokenKeySigner",
    "create_token",
    "create_tokens",
    "find_token",
    "generate_token_key",
    "init_token",
    "load_module",
    "load_token_key",
    "store_chip_id",
    "token_session",
    "write_chip_id",
    "write_softhsm2_conf",
]

CHIP_ID_LABEL = "birthright.chip-id"
CHIP_ID_APPLICATION = "birthright"
IDENTITY_LABEL = "identity"
IDENTITY_CERT_LABEL = "identity-cert"
CHAIN_LABEL_PREFIX = "chain-"
KEY_FLAGS = ("SENSITIVE", "EXTRACTABLE", "NEVER_EXTRACTABLE", "ALWAYS_SENSITIVE", "LOCAL")


def write_chip_id(lib: Pkcs11Lib, *, token_label: str, pin: str, chip_id: str) -> None:
    """Program a chip id into a token (the simulator's stand-in for a factory-set serial)."""
    with token_session(lib, token_label=token_label, pin=pin) as session:
        store_chip_id(session, chip_id)


def store_chip_id(session: pkcs11.Session, chip_id: str) -> None:
    """Replace the chip id object on the session's token."""
    if not chip_id.isascii() or not chip_id.isprintable() or not 0 < len(chip_id) <= 64:
        raise InputError("a chip id is 1-64 printable ASCII characters", code="bad_chip_id")
    with guard("writing the chip id"):
        for old in list(session.get_objects(_chip_id_template())):
            old.destroy()
        session.create_object(
            {
                **_chip_id_template(),
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.MODIFIABLE: False,
                Attribute.VALUE: chip_id.encode("ascii"),
            }
        )


def _chip_id_template() -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.LABEL: CHIP_ID_LABEL,
        Attribute.APPLICATION: CHIP_ID_APPLICATION,
    }


class TokenKeySigner(ExternalKeySigner):
    """An ``ExternalKeySigner`` over a token-resident key; keeps its session open until closed.

    Signing is thread-safe: every call into the module holds the process-wide module lock.
    """

    def __init__(
        self,
        lib: Pkcs11Lib,
        token_label: str,
        private: SignMixin,
        public_key: ec.EllipticCurvePublicKey,
    ) -> None:
        super().__init__(public_key, lambda digest: sign_digest(private, digest))
        self._lib, self._token_label, self._open = lib, token_label, True

    def close(self) -> None:
        with LOCK:
            if self._open:
                self._open = False
                release(self._lib, self._token_label)

    def __enter__(self) -> TokenKeySigner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def generate_token_key(
    lib: Pkcs11Lib, *, token_label: str, pin: str, key_label: str
) -> TokenKeySigner:
    """Generate a non-extractable P-256 key pair labelled ``key_label`` on the token."""
    session = acquire(lib, token_label, pin)
    try:
        with guard(f"generating key {key_label!r}"):
            if list(session.get_objects({Attribute.LABEL: key_label})):
                raise ConflictError(
                    f"token {token_label!r} already holds a key {key_label!r}", code="key_exists"
                )
            private = generate_p256(session, key_label, derive=False)
        return _signer(lib, token_label, session, key_label, private)
    except BaseException:
        release(lib, token_label)
        raise


def load_token_key(lib: Pkcs11Lib, *, token_label: str, pin: str, key_label: str) -> TokenKeySigner:
    """The existing key pair labelled ``key_label`` on the token."""
    session = acquire(lib, token_label, pin)
    try:
        with guard(f"finding key {key_label!r}"):
            private = find_one(session, key_template(key_label, ObjectClass.PRIVATE_KEY))
        if private is None:
            raise DeviceError(
                f"token {token_label!r} holds no key {key_label!r}", code="key_not_found"
            )
        return _signer(lib, token_label, session, key_label, private)
    except BaseException:
        release(lib, token_label)
        raise


def _signer(
    lib: Pkcs11Lib, token_label: str, session: pkcs11.Session, key_label: str, private: SignMixin
) -> TokenKeySigner:
    with guard(f"reading public key {key_label!r}"):
        public = find_one(session, key_template(key_label, ObjectClass.PUBLIC_KEY))
        if public is None:
            raise DeviceError(f"key {key_label!r} has no public half on the token")
        return TokenKeySigner(lib, token_label, private, public_key_of(public))


class Pkcs11SecureElement:
    """A ``SecureElement`` backed by one PKCS#11 token; a context manager closing its session."""

    def __init__(self, lib: Pkcs11Lib, token_label: str, session: pkcs11.Session) -> None:
        self._lib, self._label, self._session = lib, token_label, session
        self._chip_id: ChipId | None = None
        self._key: SignMixin | None = None
        self._open = True

    @classmethod
    def open(cls, lib: Pkcs11Lib, *, token_label: str, pin: str) -> Pkcs11SecureElement:
        return cls(lib, token_label, acquire(lib, token_label, pin))

    @property
    def token_label(self) -> str:
        return self._label

    def close(self) -> None:
        with LOCK:
            if self._open:
                self._open = False
                release(self._lib, self._label)

    def __enter__(self) -> Pkcs11SecureElement:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def chip_id(self) -> ChipId:
        """The programmed chip id, else the token's serial number."""
        if self._chip_id is None:
            with guard("reading the chip id"):
                data = find_one(self._session, _chip_id_template())
                raw = bytes(data[Attribute.VALUE]) if data is not None else None
                serial = self._session.token.serial
            self._chip_id = ChipId(_chip_id_text(raw if raw is not None else serial))
        return self._chip_id

    def generate_identity_key(self) -> ec.EllipticCurvePublicKey:
        with guard("generating the identity key"):
            self._key = None
            for obj in list(self._session.get_objects({Attribute.LABEL: IDENTITY_LABEL})):
                obj.destroy()
            self._destroy_chain()
            generate_p256(self._session, IDENTITY_LABEL, derive=True)
            public = self._identity(ObjectClass.PUBLIC_KEY)
        if public is None:
            raise DeviceError("the token lost the identity key it just generated")
        return public_key_of(public)

    def identity_public_key(self) -> ec.EllipticCurvePublicKey | None:
        with guard("reading the identity key"):
            public = self._identity(ObjectClass.PUBLIC_KEY)
            return public_key_of(public) if public is not None else None

    def identity_signer(self) -> ExternalKeySigner:
        public_key = self.identity_public_key()
        if public_key is None:
            raise DeviceError("this secure element holds no identity key", code="no_identity_key")
        private = self._private()
        return ExternalKeySigner(public_key, lambda digest: sign_digest(private, digest))

    def sign(self, data: bytes) -> bytes:
        return sign_digest(self._private(), hashlib.sha256(data).digest())

    def key_agreement_public_key(self) -> ec.EllipticCurvePublicKey:
        """The key envelopes are sealed to: the identity key (ADR 0010)."""
        public_key = self.identity_public_key()
        if public_key is None:
            raise DeviceError("this secure element holds no identity key", code="no_identity_key")
        return public_key

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        """Z = x(d * peer), computed on the token (CKM_ECDH1_DERIVE, KDF NULL).

        SoftHSM2 offers no KDF but NULL, so Z comes out as a session-only GENERIC_SECRET
        readable once and destroyed at once; it is returned to the caller and never kept.
        """
        point = peer.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        private = self._private()
        with guard("key agreement on the token"):
            secret = private.derive_key(  # type: ignore[attr-defined]
                KeyType.GENERIC_SECRET,
                256,
                mechanism_param=(KDF.NULL, None, point),
                template={
                    Attribute.TOKEN: False,
                    Attribute.SENSITIVE: False,
                    Attribute.EXTRACTABLE: True,
                },
            )
            try:
                z = bytes(secret[Attribute.VALUE])
            finally:
                secret.destroy()
        if len(z) != 32:
            raise DeviceError("the token returned a shared secret of the wrong size")
        return z

    def identity_key_attributes(self) -> dict[str, bool]:
        """The identity private key's SENSITIVE, EXTRACTABLE, NEVER_EXTRACTABLE, ... flags."""
        private = self._private()
        with guard("reading key attributes"):
            values = private.get_attributes([Attribute[name] for name in KEY_FLAGS])
        return {name: bool(values[Attribute[name]]) for name in KEY_FLAGS}

    def se_proof(self) -> dict[str, Any] | None:
        """Proof that the identity key lives in this genuine chip: the chip's vendor
        attestation key signs a statement over the key, its id and its attributes
        (``pkcs11-vendor``, see ``birthright.se.attestation``); None without attestation."""
        public_key = self.identity_public_key()
        if public_key is None:
            raise DeviceError("this secure element holds no identity key", code="no_identity_key")
        return vendor_proof(
            self._session,
            chip_id=self.chip_id,
            identity_public_key=public_key,
            identity_flags=self.identity_key_attributes(),
        )

    def store_chain(self, chain: Sequence[x509.Certificate]) -> None:
        if not chain:
            raise InputError("a device chain needs at least the device certificate")
        with guard("storing the certificate chain"):
            self._destroy_chain()
            private = self._identity(ObjectClass.PRIVATE_KEY)
            key_id = bytes(private[Attribute.ID]) if private is not None else b""
            for index, cert in enumerate(chain):
                label = IDENTITY_CERT_LABEL if index == 0 else f"{CHAIN_LABEL_PREFIX}{index}"
                template = cert_template(cert, label, key_id if index == 0 else b"")
                self._session.create_object(template)

    def read_chain(self) -> list[x509.Certificate]:
        with guard("reading the certificate chain"):
            ders = [bytes(obj[Attribute.VALUE]) for _index, obj in self._chain_objects()]
        try:
            return [x509.load_der_x509_certificate(der) for der in ders]
        except ValueError as e:
            raise DeviceError("the token holds a malformed certificate") from e

    def _identity(self, key_class: ObjectClass) -> Any | None:
        return find_one(self._session, key_template(IDENTITY_LABEL, key_class))

    def _private(self) -> SignMixin:
        if self._key is None:
            with guard("finding the identity key"):
                self._key = self._identity(ObjectClass.PRIVATE_KEY)
            if self._key is None:
                raise DeviceError(
                    "this secure element holds no identity key", code="no_identity_key"
                )
        return self._key

    def _chain_objects(self) -> list[tuple[int, Any]]:
        found = []
        for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
            label = str(obj[Attribute.LABEL])
            suffix = label.removeprefix(CHAIN_LABEL_PREFIX)
            if label == IDENTITY_CERT_LABEL:
                found.append((0, obj))
            elif suffix != label and suffix.isdigit():
                found.append((int(suffix), obj))
        return sorted(found, key=lambda pair: pair[0])

    def _destroy_chain(self) -> None:
        for _index, obj in self._chain_objects():
            obj.destroy()


def _chip_id_text(raw: bytes) -> str:
    """A chip id as text: printable ASCII as-is, anything else in upper-case hex."""
    if not raw or len(raw) > 64:
        raise DeviceError("the token reports no usable chip id", code="no_chip_id")
    text = raw.decode("ascii", errors="replace").strip()
    if text and text.isascii() and text.isprintable():
        return text
    return raw.hex().upper()
