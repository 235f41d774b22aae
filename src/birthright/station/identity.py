"""A provisioning station's own identity: a signing key in its token, a TLS key in a file.

Layout of a station directory ``DIR``:

- ``station.json`` — ``{station_id, token_label, key_label, softhsm2_conf, signing_cert,
  tls_cert, tls_key, ca_chain}``; paths are relative to ``DIR`` unless absolute.
- ``softhsm/`` — the station's private SoftHSM2 configuration and token store, unless the
  token was put in a shared folder (``softhsm_dir``, e.g. the simulated devices' folder).
- ``tls-key.pem`` — the TLS client key, encrypted PKCS#8; ``tls-key-passphrase`` (0600).
- ``station-cert.pem``, ``tls-cert.pem``, ``ca-chain.pem`` — written by
  ``install_station_certificates`` once the station CA has issued them.
- ``counter`` — the request counter (``birthright.station.signing.CounterStore``).

The request-signing key is generated on the token (P-256, SENSITIVE, never EXTRACTABLE). Python's
``ssl`` cannot use a PKCS#11 key, so mutual TLS uses a separate file key: a copy of the
directory carries the TLS key, but every request must also be signed by the token key, and a
copy that shares the counter is caught as a counter fork.

SoftHSM2 reads its configuration once per process: a process that also opens simulated devices
must keep the station token in the devices' folder (pass it as ``softhsm_dir``).
"""

from __future__ import annotations

import json
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.ca import keys
from birthright.ca.station import check_station_id
from birthright.errors import ConfigError, ConflictError, InputError
from birthright.se.pkcs11 import (
    TokenKeySigner,
    create_token,
    generate_token_key,
    load_module,
    load_token_key,
    write_softhsm2_conf,
)
from birthright.settings import SOFTHSM2_MODULE
from birthright.types import StationId
from birthright.workspace import read_secret_file, write_secret_file

STATION_FILE = "station.json"
CONF_FILE = "softhsm2.conf"
SIGNING_KEY_LABEL = "station-signing"
TLS_KEY = "tls-key.pem"
TLS_KEY_SECRET = "tls-key-passphrase"  # noqa: S105 - a file name
SIGNING_CERT = "station-cert.pem"
TLS_CERT = "tls-cert.pem"
CA_CHAIN = "ca-chain.pem"
COUNTER_FILE = "counter"


@dataclass(frozen=True)
class StationKeys:
    """A new station's two keys, as certificate requests for the station CA."""

    station_id: StationId
    token_label: str
    #: Signed by the token key: the request-signing identity.
    signing_csr: x509.CertificateSigningRequest
    #: Signed by the TLS file key: the mutual-TLS client identity.
    tls_csr: x509.CertificateSigningRequest


@dataclass(frozen=True)
class StationConfig:
    """``station.json``, parsed, with its paths resolved against the station directory."""

    directory: Path
    station_id: StationId
    token_label: str
    key_label: str
    softhsm2_conf: Path
    signing_cert: Path
    tls_cert: Path
    tls_key: Path
    ca_chain: Path

    @property
    def counter_file(self) -> Path:
        return self.directory / COUNTER_FILE

    @property
    def tls_key_passphrase(self) -> str:
        return read_secret_file(self.directory / TLS_KEY_SECRET)


def token_label_for(station_id: str) -> str:
    return f"station-{station_id}"[:32]


def create_station_identity(
    station_dir: Path,
    station_id: str,
    *,
    pin: str,
    softhsm_dir: Path | None = None,
    module_path: str = SOFTHSM2_MODULE,
) -> StationKeys:
    """Make the station's token and keys in ``station_dir``; return the two CSRs.

    The token lives in ``softhsm_dir`` (a folder with ``softhsm2.conf``) when given, else in
    a private ``station_dir/softhsm``. Refuses (``station_exists``) when ``station_dir``
    already holds an identity. The token's SO PIN is random and discarded.
    """
    sid = check_station_id(station_id)
    if not 4 <= len(pin.encode()) <= 255:
        raise InputError("a token PIN must be 4-255 bytes long", code="bad_pin")
    if (station_dir / STATION_FILE).exists():
        raise ConflictError(
            f"{station_dir} already holds a station identity", code="station_exists"
        )
    station_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if softhsm_dir is None:
        softhsm_dir = station_dir / "softhsm"
        write_softhsm2_conf(softhsm_dir / CONF_FILE, softhsm_dir / "tokens")
    conf = softhsm_dir / CONF_FILE
    if not conf.is_file():
        raise ConfigError(f"{conf} does not exist", code="softhsm2_conf_missing")
    label = token_label_for(sid)
    lib = load_module(module_path, softhsm2_conf=conf)
    create_token(lib, label=label, so_pin=secrets.token_urlsafe(16), pin=pin)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sid)])
    with generate_token_key(lib, token_label=label, pin=pin, key_label=SIGNING_KEY_LABEL) as key:
        signing_csr = _csr(subject, key)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    passphrase = secrets.token_urlsafe(24)
    write_secret_file(station_dir / TLS_KEY_SECRET, passphrase)
    keys.write_encrypted_key(tls_key, station_dir / TLS_KEY, passphrase)
    _write_config(
        station_dir,
        {
            "station_id": sid,
            "token_label": label,
            "key_label": SIGNING_KEY_LABEL,
            "softhsm2_conf": _relative(conf.resolve(), station_dir.resolve()),
            "signing_cert": SIGNING_CERT,
            "tls_cert": TLS_CERT,
            "tls_key": TLS_KEY,
            "ca_chain": CA_CHAIN,
        },
    )
    return StationKeys(sid, label, signing_csr, _csr(subject, tls_key))


def _csr(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _write_config(station_dir: Path, values: dict[str, Any]) -> None:
    data = json.dumps(values, indent=2).encode() + b"\n"
    keys.atomic_write(station_dir / STATION_FILE, data, mode=0o644)


def load_station_config(station_dir: Path) -> StationConfig:
    """Parse ``station.json``; ``ConfigError`` (``station_missing``) when there is none."""
    path = station_dir / STATION_FILE
    try:
        raw: Any = json.loads(path.read_text())
        values = {k: str(raw[k]) for k in _CONFIG_KEYS}
    except FileNotFoundError as e:
        raise ConfigError(f"{station_dir} holds no station identity", code="station_missing") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a valid station file", code="station_invalid") from e
    base = station_dir

    def at(name: str) -> Path:
        return base / values[name]  # an absolute value replaces ``base``

    return StationConfig(
        directory=station_dir,
        station_id=check_station_id(values["station_id"]),
        token_label=values["token_label"],
        key_label=values["key_label"],
        softhsm2_conf=at("softhsm2_conf"),
        signing_cert=at("signing_cert"),
        tls_cert=at("tls_cert"),
        tls_key=at("tls_key"),
        ca_chain=at("ca_chain"),
    )


_CONFIG_KEYS = (
    "station_id",
    "token_label",
    "key_label",
    "softhsm2_conf",
    "signing_cert",
    "tls_cert",
    "tls_key",
    "ca_chain",
)


def load_station_signer(
    station_dir: Path, station_id: str, *, pin: str, module_path: str = SOFTHSM2_MODULE
) -> TokenKeySigner:
    """The station's token key as a ``cryptography`` private key (close it when done)."""
    config = load_station_config(station_dir)
    if config.station_id != station_id:
        raise ConfigError(
            f"{station_dir} belongs to station {config.station_id!r}, not {station_id!r}",
            code="station_mismatch",
        )
    lib = load_module(module_path, softhsm2_conf=config.softhsm2_conf)
    return load_token_key(lib, token_label=config.token_label, pin=pin, key_label=config.key_label)


def install_station_certificates(
    station_dir: Path,
    *,
    signing_cert: x509.Certificate,
    tls_cert: x509.Certificate,
    chain: list[x509.Certificate],
) -> StationConfig:
    """Store the certificates the station CA issued; the TLS one must match the TLS key."""
    config = load_station_config(station_dir)
    tls_key = keys.load_encrypted_key(config.tls_key, config.tls_key_passphrase)
    if tls_cert.public_key() != tls_key.public_key():
        raise InputError(
            "the TLS certificate is not for this station's TLS key", code="cert_mismatch"
        )

    def pem(certs: list[x509.Certificate]) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in certs)

    keys.atomic_write(config.signing_cert, pem([signing_cert]), mode=0o644)
    # the TLS file carries the station CA too, so the server can build the path
    keys.atomic_write(config.tls_cert, pem([tls_cert, *chain[:1]]), mode=0o644)
    keys.atomic_write(config.ca_chain, pem(chain), mode=0o644)
    return config


def read_signing_cert(station_dir: Path) -> x509.Certificate:
    config = load_station_config(station_dir)
    try:
        return x509.load_pem_x509_certificate(config.signing_cert.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(
            f"{config.signing_cert} does not exist: install the station's certificates",
            code="station_cert_missing",
        ) from e


def station_ssl_context(station_dir: Path, ca_file: Path) -> ssl.SSLContext:
    """A client ``SSLContext`` presenting the station's TLS certificate (``httpx`` ``verify=``).

    ``ca_file`` holds the certificates trusted for the server: the offline root or the
    station CA itself (a partial chain is accepted, so the station CA can be the anchor).
    """
    config = load_station_config(station_dir)
    if not config.tls_cert.is_file():
        raise ConfigError(
            f"{config.tls_cert} does not exist: install the station's certificates",
            code="station_cert_missing",
        )
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        context.load_cert_chain(
            str(config.tls_cert), str(config.tls_key), password=config.tls_key_passphrase
        )
    except ssl.SSLError as e:
        raise ConfigError(
            f"cannot load the station's TLS key {config.tls_key}", code="station_tls_key"
        ) from e
    return context
