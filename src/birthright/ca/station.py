"""The station CA: a second intermediate under the offline root, for stations and the TLS server.

It is separate from the device issuing CA, so a device certificate can never pass as a station
and a station certificate can never pass as a device. ``StationCa`` and
``verify_station_cert`` are pure; ``init_station_ca``, ``load_station_ca``,
``write_server_tls`` and ``server_tls_files`` are the workspace edges:

    <workspace>/ca/station-ca.pem        station CA certificate (also in certs/)
    <workspace>/ca/station-ca-key.pem    key, encrypted PKCS#8 (secret ``station-ca-passphrase``)
    <workspace>/ca/server.pem            TLS server certificate followed by the station CA
    <workspace>/ca/server-key.pem        key, encrypted PKCS#8 (secret ``server-key-passphrase``)

Every station gets two certificates for the same station id: a *signing* certificate for its
non-exportable token key (request signatures) and a *TLS client* certificate for a file key
(Python's ``ssl`` cannot use a PKCS#11 key). Both carry CN = station id and the SAN URI
``urn:birthright:station:<id>``; the service needs only the station CA certificate to check them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from birthright.ca import keys
from birthright.ca.authority import ROOT_CERT, ROOT_KEY, SECRET_ROOT_PASSPHRASE
from birthright.ca.csr import parse_csr
from birthright.ca.hierarchy import ca_name
from birthright.ca.profile import authority_key_identifier
from birthright.errors import ConfigError, InputError, TrustError
from birthright.settings import Settings
from birthright.types import StationId
from birthright.workspace import Workspace

STATION_CA_CERT = "station-ca.pem"
STATION_CA_KEY = "station-ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
SECRET_STATION_CA_PASSPHRASE = "station-ca-passphrase"  # noqa: S105 - a secret's file name
SECRET_SERVER_KEY_PASSPHRASE = "server-key-passphrase"  # noqa: S105 - a secret's file name
STATION_URI_PREFIX = "urn:birthright:station:"

STATION_CA_LIFETIME = timedelta(days=10 * 365 + 2)
STATION_CERT_LIFETIME = timedelta(days=2 * 365)
SERVER_CERT_LIFETIME = timedelta(days=365)
#: Backdate leaf certificates a little: a station clock slightly behind must still accept them.
BACKDATE = timedelta(minutes=5)

_STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CA_ONLY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_SIGN_ONLY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


class ClientCertUntrusted(TrustError):
    """A certificate presented as a station's was not issued by the station CA."""

    code = "client_cert_untrusted"


def check_station_id(station_id: str) -> StationId:
    """A station id: 1-64 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit."""
    if not _STATION_ID.fullmatch(station_id):
        raise InputError(
            "a station id is 1-64 letters, digits, '.', '_' or '-'", code="bad_station_id"
        )
    return StationId(station_id)


def station_id_of(cert: x509.Certificate) -> StationId:
    """The station id a station certificate names (SAN URI, which must agree with the CN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise ClientCertUntrusted("the certificate names no station") from e
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
    ids = [u.removeprefix(STATION_URI_PREFIX) for u in uris if u.startswith(STATION_URI_PREFIX)]
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if len(ids) != 1 or cns != ids:
        raise ClientCertUntrusted("the certificate does not name exactly one station")
    return StationId(ids[0])


def verify_station_cert(
    cert: x509.Certificate, *, station_ca: x509.Certificate, now: datetime
) -> StationId:
    """The station id of ``cert``; ``ClientCertUntrusted`` unless the station CA issued it.

    The station CA certificate is the trust anchor: a certificate from the device issuing CA,
    under the same root, does not verify. Checks validity at ``now``, keyUsage and EKU
    clientAuth (RFC 5280 client-verifier policy of ``cryptography``).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    verifier = (
        PolicyBuilder()
        .store(Store([station_ca]))
        .time(now)
        .max_chain_depth(0)
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, [])
    except (VerificationError, ValueError) as e:
        raise ClientCertUntrusted(f"the certificate was not issued by the station CA: {e}") from e
    return station_id_of(cert)


@dataclass(frozen=True)
class ServerTlsFiles:
    """What a TLS server needs: its chain, its encrypted key and the station CA to trust."""

    certfile: Path
    keyfile: Path
    password: str = field(repr=False)
    client_ca_file: Path


class StationCa:
    """The station CA's certificate and key, with the root it chains to. Pure."""

    def __init__(
        self,
        *,
        root_cert: x509.Certificate,
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        organization: str,
    ) -> None:
        if ca_cert.public_key() != ca_key.public_key():
            raise ConfigError(
                "the station CA key does not match its certificate", code="ca_key_mismatch"
            )
        self.root_cert = root_cert
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.organization = organization

    def chain(self) -> list[x509.Certificate]:
        """What sits above a station or server certificate: the station CA, then the root."""
        return [self.ca_cert, self.root_cert]

    def issue_station_cert(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        station_id: str,
        site: str,
        line: str,
        now: datetime,
        lifetime: timedelta = STATION_CERT_LIFETIME,
    ) -> x509.Certificate:
        """A station certificate (signing or TLS client) for the key of a checked ``csr``.

        The CSR proves possession of the key; its subject is ignored. The certificate says
        CN = station id, O = organization, OU = ``site/line``; keyUsage digitalSignature,
        EKU clientAuth, SAN URI ``urn:birthright:station:<id>``.
        """
        sid = check_station_id(station_id)
        public_key = parse_csr(csr.public_bytes(Encoding.DER)).public_key
        unit = f"{site}/{line}"
        if not 0 < len(unit) <= 64:
            raise InputError("site/line must be 1-64 characters", code="bad_station_unit")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                x509.NameAttribute(NameOID.COMMON_NAME, sid),
            ]
        )
        san = x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(STATION_URI_PREFIX + sid)]
        )
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        return self._leaf(subject, public_key, san, eku, now=now, lifetime=lifetime)

    def issue_server_cert(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        hostnames: Sequence[str] = ("127.0.0.1", "localhost"),
        now: datetime,
        lifetime: timedelta = SERVER_CERT_LIFETIME,
    ) -> x509.Certificate:
        """A TLS server certificate: SAN with an IP address or DNS name per ``hostnames``."""
        if not hostnames:
            raise InputError("a server certificate needs at least one host name")
        names: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64]),
            ]
        )
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        san = x509.SubjectAlternativeName(names)
        return self._leaf(subject, public_key, san, eku, now=now, lifetime=lifetime)

    def verify_station_cert(self, cert: x509.Certificate, now: datetime) -> StationId:
        return verify_station_cert(cert, station_ca=self.ca_cert, now=now)

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        san: x509.SubjectAlternativeName,
        eku: x509.ExtendedKeyUsage,
        *,
        now: datetime,
        lifetime: timedelta,
    ) -> x509.Certificate:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        start = now.replace(microsecond=0) - BACKDATE
        not_after = min(start + lifetime, self.ca_cert.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_SIGN_ONLY_USAGE, critical=True)
            .add_extension(eku, critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(authority_key_identifier(self.ca_cert), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )


def build_station_ca(
    *,
    organization: str,
    ca_public_key: ec.EllipticCurvePublicKey,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> x509.Certificate:
    """The station CA certificate: CA:true pathLen 0, keyCertSign + cRLSign, under the root."""
    start = now.replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name(organization, "Station CA"))
        .issuer_name(root_cert.subject)
        .public_key(ca_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(start + STATION_CA_LIFETIME, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_ONLY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_public_key), critical=False)
        .add_extension(authority_key_identifier(root_cert), critical=False)
        .sign(root_key, hashes.SHA256())
    )


# -- workspace edges ------------------------------------------------------------------------


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path} does not exist: create the station CA first", code="station_ca_missing"
        ) from e
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM certificate", code="ca_cert_invalid") from e


def read_station_ca_cert(ws: Workspace) -> x509.Certificate:
    """The station CA certificate alone: all the service needs to check stations."""
    return _read_cert(ws.ca_dir / STATION_CA_CERT)


def init_station_ca(settings: Settings, *, now: datetime, force: bool = False) -> StationCa:
    """Create the station CA under the workspace's root (which must exist; its key is read once).

    Refuses (``station_ca_exists``) to replace an existing station CA unless ``force``.
    """
    ws = settings.ws
    existing = [p for p in (ws.ca_dir / STATION_CA_CERT, ws.ca_dir / STATION_CA_KEY) if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{ws.root} already holds a station CA; pass --force to replace it",
            code="station_ca_exists",
        )
    root_cert = _read_cert(ws.ca_dir / ROOT_CERT)
    root_key = keys.load_encrypted_key(ws.ca_dir / ROOT_KEY, ws.secret(SECRET_ROOT_PASSPHRASE))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build_station_ca(
        organization=settings.organization,
        ca_public_key=ca_key.public_key(),
        root_cert=root_cert,
        root_key=root_key,
        now=now,
    )
    passphrase = ws.secret(SECRET_STATION_CA_PASSPHRASE, create=True)
    keys.write_encrypted_key(ca_key, ws.ca_dir / STATION_CA_KEY, passphrase)
    pem = ca_cert.public_bytes(Encoding.PEM)
    keys.atomic_write(ws.ca_dir / STATION_CA_CERT, pem, mode=0o644)
    keys.atomic_write(ws.certs_dir / STATION_CA_CERT, pem, mode=0o644)
    return StationCa(
        root_cert=root_cert, ca_cert=ca_cert, ca_key=ca_key, organization=settings.organization
    )


def load_station_ca(settings: Settings) -> StationCa:
    """The workspace's station CA with its key decrypted (an operator tool, not the service)."""
    ws = settings.ws
    key = keys.load_encrypted_key(
        ws.ca_dir / STATION_CA_KEY, ws.secret(SECRET_STATION_CA_PASSPHRASE)
    )
    return StationCa(
        root_cert=_read_cert(ws.ca_dir / ROOT_CERT),
        ca_cert=read_station_ca_cert(ws),
        ca_key=key,
        organization=settings.organization,
    )


def write_server_tls(
    ws: Workspace,
    station_ca: StationCa,
    *,
    now: datetime,
    hostnames: Sequence[str] = ("127.0.0.1", "localhost"),
) -> ServerTlsFiles:
    """Issue (or re-issue) the service's TLS certificate; its key is encrypted at rest."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = station_ca.issue_server_cert(key.public_key(), hostnames=hostnames, now=now)
    password = ws.secret(SECRET_SERVER_KEY_PASSPHRASE, create=True)
    keys.write_encrypted_key(key, ws.ca_dir / SERVER_KEY, password)
    chain = cert.public_bytes(Encoding.PEM) + station_ca.ca_cert.public_bytes(Encoding.PEM)
    keys.atomic_write(ws.ca_dir / SERVER_CERT, chain, mode=0o644)
    return server_tls_files(ws)


def server_tls_files(ws: Workspace) -> ServerTlsFiles:
    """The service's TLS files, checked to exist (``server_tls_missing`` otherwise)."""
    files = ServerTlsFiles(
        certfile=ws.ca_dir / SERVER_CERT,
        keyfile=ws.ca_dir / SERVER_KEY,
        password=ws.secret(SECRET_SERVER_KEY_PASSPHRASE),
        client_ca_file=ws.ca_dir / STATION_CA_CERT,
    )
    for path in (files.certfile, files.keyfile, files.client_ca_file):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist", code="server_tls_missing")
    return files
