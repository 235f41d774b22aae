"""PKCS#11 plumbing shared by the public drivers in ``birthright.se.pkcs11``.

One python-pkcs11 wrapper per module and process (loading a module twice fails). Every call
into a module goes through ``LOCK``: python-pkcs11 calls ``C_Initialize(NULL)``, which tells
SoftHSM2 the application is single-threaded, so SoftHSM2 switches its own mutexes off.
Login state in PKCS#11 belongs to the token, not the session (a second ``C_Login`` fails, any
``C_Logout`` logs every session out), so each token gets one shared, logged-in session per
process, reference-counted by its users.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import secrets
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e
from pkcs11.types import SignMixin

from birthright.errors import ConfigError, ConflictError, DeviceError, InputError

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

#: DER of the named-curve OID prime256v1 / secp256r1, the value of CKA_EC_PARAMS.
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")

LOCK = threading.RLock()
_LIBS: dict[str, Pkcs11Lib] = {}
_CONF_AT_LOAD: dict[str, str | None] = {}
_PIN_SALT = secrets.token_bytes(16)


@contextmanager
def guard(action: str) -> Iterator[None]:
    """Hold the module lock and turn PKCS#11 failures into our errors (never echoing PINs)."""
    with LOCK:
        try:
            yield
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange) as e:
            raise DeviceError(f"{action}: the PIN was refused", code="pin_incorrect") from e
        except p11e.PinLocked as e:
            raise DeviceError(f"{action}: the PIN is locked", code="pin_locked") from e
        except p11e.PKCS11Error as e:
            raise DeviceError(f"{action} failed ({type(e).__name__})") from e


def load_module(path: str, *, softhsm2_conf: Path | None = None) -> Pkcs11Lib:
    """The process's one wrapper of the PKCS#11 module at ``path``.

    With ``softhsm2_conf``, set ``SOFTHSM2_CONF`` before the first load (SoftHSM2 reads it
    once, in ``C_Initialize``) or check that the loaded module already uses it.
    """
    key = os.path.realpath(path)
    with LOCK:
        if key in _LIBS:
            _check_conf(key, softhsm2_conf)
            return _LIBS[key]
        if not Path(key).is_file():
            raise ConfigError(f"PKCS#11 module not found: {path}")
        if softhsm2_conf is not None:
            os.environ["SOFTHSM2_CONF"] = str(softhsm2_conf.resolve())
        try:
            lib = pkcs11.lib(key)
        except p11e.PKCS11Error as e:
            raise ConfigError(f"cannot load PKCS#11 module {path} ({type(e).__name__})") from e
        _LIBS[key] = lib
        _CONF_AT_LOAD[key] = os.environ.get("SOFTHSM2_CONF")
        return lib


def bound_module(path: str, softhsm2_conf: Path) -> Pkcs11Lib | None:
    """The module at ``path`` if this process already loaded it with ``softhsm2_conf``."""
    key = os.path.realpath(path)
    with LOCK:
        loaded = _CONF_AT_LOAD.get(key)
        if (
            key in _LIBS
            and loaded is not None
            and Path(loaded).resolve() == softhsm2_conf.resolve()
        ):
            return _LIBS[key]
        return None


def _check_conf(key: str, wanted: Path | None) -> None:
    if wanted is None:
        return
    loaded = _CONF_AT_LOAD.get(key)
    if loaded is None or Path(loaded).resolve() != wanted.resolve():
        raise ConfigError(
            f"the PKCS#11 module {key} is already loaded in this process with "
            f"SOFTHSM2_CONF={loaded}; SoftHSM2 reads its configuration once per process, "
            f"so use {wanted} from a separate process",
            code="softhsm2_conf_conflict",
        )


def write_softhsm2_conf(conf_path: Path, token_dir: Path) -> Path:
    """Write a private SoftHSM2 configuration (file object store) and create its token dir."""
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf_path.write_text(
        f"directories.tokendir = {token_dir.resolve()}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    return conf_path


def init_token(*, module_path: str, conf_path: Path, label: str, so_pin: str, pin: str) -> None:
    """Initialise a fresh SoftHSM2 token with ``softhsm2-util`` (a separate process).

    A process that already loaded the module sees the token only after its sessions are all
    closed (``find_token`` then re-initialises the module); see ``create_token`` otherwise.
    """
    _check_label(label)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf_path.resolve())}
    shown = _softhsm2_util(["--module", module_path, "--show-slots"], env)
    if any(
        line.split(":", 1)[1].strip() == label
        for line in shown.splitlines()
        if line.strip().startswith("Label:")
    ):
        raise ConflictError(f"a token labelled {label!r} already exists", code="token_exists")
    init = ["--module", module_path, "--init-token", "--free", "--label", label]
    _softhsm2_util([*init, "--so-pin", so_pin, "--pin", pin], env)


def _softhsm2_util(args: list[str], env: dict[str, str]) -> str:
    """Run softhsm2-util; its arguments (which may hold PINs) never appear in errors."""
    try:
        done = subprocess.run(
            ["softhsm2-util", *args], env=env, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError as e:
        raise ConfigError("softhsm2-util is not installed (Debian package softhsm2)") from e
    except subprocess.TimeoutExpired:
        # not chained: the exception's text is the command line, PINs included
        raise DeviceError("softhsm2-util did not finish within 60 s") from None
    if done.returncode != 0:
        raise DeviceError(f"softhsm2-util {args[2]} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def create_token(lib: Pkcs11Lib, *, label: str, so_pin: str, pin: str) -> pkcs11.Token:
    """Initialise one of the module's free tokens in this process; see ``create_tokens``."""
    return next(create_tokens(lib, [label], so_pin=so_pin, pin=pin))


def create_tokens(
    lib: Pkcs11Lib, labels: Sequence[str], *, so_pin: str, pin: str
) -> Iterator[pkcs11.Token]:
    """Initialise free tokens in this process (``C_InitToken`` + ``C_InitPIN``), one per label.

    python-pkcs11 has no ``C_InitToken``: it is called through ctypes on the same, already
    initialised module. Unlike ``init_token`` the new tokens are visible at once, and the
    slot list is scanned once per token rather than the whole token directory reloaded.
    """
    for label in labels:
        _check_label(label)
    with guard("initialising tokens"):
        slots = lib.get_slots(token_present=True)
        tokens = [slot.get_token() for slot in slots]
        clashes = {t.label for t in tokens if _initialised(t)} & set(labels)
        if clashes or len(set(labels)) != len(labels):
            raise ConflictError(
                f"token labels already taken: {sorted(clashes)}", code="token_exists"
            )
        free = next((t.slot for t in reversed(tokens) if not _initialised(t)), None)
        known = {slot.slot_id for slot in slots}
        c_init_token = ctypes.CDLL(lib.so).C_InitToken
        c_init_token.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        c_init_token.restype = ctypes.c_ulong
    so = so_pin.encode()
    for label in labels:
        with guard(f"initialising token {label!r}"):
            if free is None:
                raise DeviceError("the PKCS#11 module offers no free token slot")
            rv = c_init_token(free.slot_id, so, len(so), label.encode().ljust(32))
            if rv != 0:
                raise DeviceError(f"C_InitToken for {label!r} failed (CKR 0x{rv:x})")
            token = free.get_token()
            with token.open(rw=True, so_pin=so_pin) as session:
                session.init_pin(pin)
            new = [s for s in lib.get_slots(token_present=True) if s.slot_id not in known]
            known.update(s.slot_id for s in new)
            free = next((s for s in new if not _initialised(s.get_token())), None)
        yield token


def _initialised(token: pkcs11.Token) -> bool:
    return bool(token.flags & TokenFlag.TOKEN_INITIALIZED)


def _check_label(label: str) -> None:
    if not label or len(label.encode()) > 32:
        raise InputError(f"a token label must be 1-32 bytes: {label!r}", code="bad_token_label")


def _tokens(lib: Pkcs11Lib) -> list[pkcs11.Token]:
    return [slot.get_token() for slot in lib.get_slots(token_present=True)]


def find_token(lib: Pkcs11Lib, label: str) -> pkcs11.Token:
    """The token labelled ``label``; slot ids change when tokens are initialised.

    A scan reads every slot, so its result is kept and a hit is re-checked with one call.
    """
    with guard(f"finding token {label!r}"):
        cached = _SLOT_CACHE.get(lib.so, {}).get(label)
        if cached is not None:
            try:
                token = cached.get_token()
                if token.label == label:
                    return token
            except p11e.PKCS11Error:
                pass
        found = _scan(lib, label)
        if not found and not any(k[0] == lib.so for k in _SESSIONS):
            # SoftHSM2 scans its token directory only in C_Initialize: pick up tokens that
            # another process created since, which is safe while no session is open.
            lib.reinitialize()
            found = _scan(lib, label)
    if not found:
        raise DeviceError(f"no token labelled {label!r}", code="token_not_found")
    if len(found) > 1:
        raise DeviceError(f"several tokens are labelled {label!r}", code="token_ambiguous")
    return found[0]


_SLOT_CACHE: dict[str, dict[str, pkcs11.Slot]] = {}


def _scan(lib: Pkcs11Lib, label: str) -> list[pkcs11.Token]:
    tokens = [t for t in _tokens(lib) if _initialised(t)]
    counts = Counter(t.label for t in tokens)
    _SLOT_CACHE[lib.so] = {t.label: t.slot for t in tokens if counts[t.label] == 1}
    return [t for t in tokens if t.label == label]


@dataclass
class _Shared:
    session: pkcs11.Session
    pin_tag: bytes
    users: int


_SESSIONS: dict[tuple[str, str], _Shared] = {}


def _pin_tag(pin: str) -> bytes:
    return hmac.new(_PIN_SALT, pin.encode(), hashlib.sha256).digest()


def acquire(lib: Pkcs11Lib, token_label: str, pin: str) -> pkcs11.Session:
    key = (lib.so, token_label)
    with LOCK:
        shared = _SESSIONS.get(key)
        if shared is not None:
            if not hmac.compare_digest(shared.pin_tag, _pin_tag(pin)):
                raise DeviceError(
                    f"token {token_label!r}: the PIN was refused", code="pin_incorrect"
                )
            shared.users += 1
            return shared.session
        token = find_token(lib, token_label)
        with guard(f"logging in to token {token_label!r}"):
            session = token.open(rw=True, user_pin=pin)
        _SESSIONS[key] = _Shared(session, _pin_tag(pin), 1)
        return session


def release(lib: Pkcs11Lib, token_label: str) -> None:
    key = (lib.so, token_label)
    with LOCK:
        shared = _SESSIONS.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users == 0:
            del _SESSIONS[key]
            with guard(f"closing the session on token {token_label!r}"):
                shared.session.close()


@contextmanager
def token_session(lib: Pkcs11Lib, *, token_label: str, pin: str) -> Iterator[pkcs11.Session]:
    """The token's shared, logged-in read/write session; hold ``LOCK`` while using it."""
    session = acquire(lib, token_label, pin)
    try:
        yield session
    finally:
        release(lib, token_label)


def key_template(label: str, key_class: ObjectClass) -> dict[Attribute, Any]:
    return {Attribute.CLASS: key_class, Attribute.KEY_TYPE: KeyType.EC, Attribute.LABEL: label}


def generate_p256(session: pkcs11.Session, label: str, *, derive: bool) -> SignMixin:
    """An on-token P-256 key pair that can never leave the token."""
    key_id = secrets.token_bytes(16)
    common = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id}
    _public, private = session.generate_keypair(
        KeyType.EC,
        mechanism=Mechanism.EC_KEY_PAIR_GEN,
        public_template={
            **common,
            Attribute.EC_PARAMS: P256_PARAMS,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
            Attribute.DERIVE: False,
        },
        private_template={
            **common,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DERIVE: derive,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
        },
    )
    return cast(SignMixin, private)


def find_one(session: pkcs11.Session, template: dict[Attribute, Any]) -> Any | None:
    found = list(session.get_objects(template))
    if len(found) > 1:
        raise DeviceError(f"several objects labelled {template.get(Attribute.LABEL)!r}")
    return found[0] if found else None


def public_key_of(public: pkcs11.PublicKey) -> ec.EllipticCurvePublicKey:
    if bytes(public[Attribute.EC_PARAMS]) != P256_PARAMS:
        raise DeviceError("the token key is not on curve P-256", code="wrong_curve")
    point = bytes(public[Attribute.EC_POINT])
    if len(point) == 67 and point[:2] == b"\x04\x41":  # DER OCTET STRING around the point
        point = point[2:]
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as e:
        raise DeviceError("the token returned a malformed EC point") from e


def sign_digest(private: SignMixin, digest: bytes) -> bytes:
    with guard("signing on the token"):
        raw = private.sign(digest, mechanism=Mechanism.ECDSA)
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def cert_template(cert: x509.Certificate, label: str, key_id: bytes) -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.ID: key_id,
        Attribute.SUBJECT: cert.subject.public_bytes(),
        Attribute.ISSUER: cert.issuer.public_bytes(),
        Attribute.SERIAL_NUMBER: der_integer(cert.serial_number),
        Attribute.VALUE: cert.public_bytes(Encoding.DER),
    }


def der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    if len(body) > 127:  # X.509 serials are at most 20 octets
        raise InputError("certificate serial number too long", code="bad_certificate")
    return b"\x02" + bytes([len(body)]) + body
