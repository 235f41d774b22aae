"""The factory CA: issues device certificates under an issuing CA, verifies chains to the root.

``FactoryCa`` is pure (certificates, a signing key and a profile in; certificates out).
``load_factory_ca`` and ``init_workspace_ca`` are the edges that read and write a workspace:

    <workspace>/ca/root.pem            offline root certificate
    <workspace>/ca/root-key.pem        root key, encrypted PKCS#8 (secret ``ca-root-passphrase``);
                                       the service never loads it: move it offline in production
    <workspace>/ca/issuing.pem         issuing CA certificate
    <workspace>/ca/issuing-key.pem     issuing key, encrypted PKCS#8 (secret ``ca-passphrase``)
                                       when ``ca_key_storage = "file"``
    <workspace>/hsm/softhsm2.conf      SoftHSM2 config + tokens/ when ``ca_key_storage = "pkcs11"``:
                                       token ``ca_token_label``, key label ``issuing``,
                                       user PIN in secret ``ca-pin``, SO PIN in ``ca-so-pin``
    <workspace>/certs/root.pem, issuing.pem   exported copies
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from birthright.ca import keys
from birthright.ca.hierarchy import init_hierarchy
from birthright.ca.profile import DeviceProfile, ProfileError, build_device_certificate
from birthright.ca.verify import verify_device_chain
from birthright.errors import ConfigError
from birthright.settings import Settings
from birthright.workspace import Workspace

__all__ = [
    "FactoryCa",
    "device_profile",
    "init_hierarchy",
    "init_workspace_ca",
    "load_factory_ca",
    "read_ca_certificates",
]

log = logging.getLogger(__name__)

ROOT_CERT = "root.pem"
ROOT_KEY = "root-key.pem"
ISSUING_CERT = "issuing.pem"
ISSUING_KEY = "issuing-key.pem"
SECRET_ISSUING_PASSPHRASE = "ca-passphrase"  # noqa: S105 - a secret's file name
SECRET_ROOT_PASSPHRASE = "ca-root-passphrase"  # noqa: S105 - a secret's file name
SECRET_PIN = "ca-pin"  # noqa: S105 - a secret's file name
SECRET_SO_PIN = "ca-so-pin"  # noqa: S105 - a secret's file name


class FactoryCa:
    """An issuing CA below an offline root, with the device profile it stamps on every unit."""

    def __init__(
        self,
        *,
        root_cert: x509.Certificate,
        issuing_cert: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        profile: DeviceProfile,
    ) -> None:
        _check_pair(root_cert, issuing_cert, issuing_key)
        self.root_cert = root_cert
        self.issuing_cert = issuing_cert
        self.issuing_key = issuing_key
        self.profile = profile

    def issue_device(
        self,
        *,
        public_key: ec.EllipticCurvePublicKey,
        product_serial: str,
        chip_id: str,
        now: datetime,
        product: str | None = None,
        policy_oids: Sequence[str] = (),
    ) -> x509.Certificate:
        profile = self.profile
        if product is not None and product != profile.product:
            profile = dataclasses.replace(profile, product=product)
        return build_device_certificate(
            profile=profile,
            public_key=public_key,
            product_serial=product_serial,
            chip_id=chip_id,
            issuer_cert=self.issuing_cert,
            issuer_key=self.issuing_key,
            now=now,
            policy_oids=policy_oids,
        )

    def chain(self) -> list[x509.Certificate]:
        """What a device stores above its own certificate: issuing CA, then root."""
        return [self.issuing_cert, self.root_cert]

    def verify_chain(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime
    ) -> None:
        """Raise ``TrustError`` (code ``chain_untrusted``) unless ``leaf`` chains to our root."""
        verify_device_chain(leaf, intermediates, roots=[self.root_cert], now=now)

    def close(self) -> None:
        """Release the issuing key's token session, if it has one."""
        close = getattr(self.issuing_key, "close", None)
        if callable(close):
            close()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _check_pair(
    root: x509.Certificate, issuing: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    issuing_public = issuing.public_key()
    if not isinstance(issuing_public, ec.EllipticCurvePublicKey) or _spki(issuing_public) != _spki(
        key.public_key()
    ):
        raise ConfigError(
            "the issuing CA key does not match the issuing CA certificate", code="ca_key_mismatch"
        )
    try:
        issuing.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise ConfigError(
            "the issuing CA certificate is not signed by the root", code="ca_chain_broken"
        ) from e


# -- workspace edges ------------------------------------------------------------------------


def device_profile(settings: Settings) -> DeviceProfile:
    """The device profile the settings describe (CRL and OCSP under the public URL)."""
    base = settings.effective_public_url
    try:
        return DeviceProfile(
            organization=settings.organization,
            product=settings.product,
            crl_url=f"{base}/crl/issuing.crl",
            ocsp_url=f"{base}/ocsp",
        )
    except ProfileError as e:
        raise ConfigError(f"invalid device profile settings: {e.message}") from e


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path} does not exist: run `birthright ca init --workspace ...` first",
            code="ca_missing",
        ) from e
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM certificate", code="ca_cert_invalid") from e


def read_ca_certificates(ws: Workspace) -> tuple[x509.Certificate, x509.Certificate]:
    """``(root, issuing)`` certificates of the workspace's CA."""
    return _read_cert(ws.ca_dir / ROOT_CERT), _read_cert(ws.ca_dir / ISSUING_CERT)


def load_factory_ca(settings: Settings) -> FactoryCa:
    """The workspace's CA with its issuing key opened (file or token); never the root key."""
    ws = settings.ws
    root, issuing = read_ca_certificates(ws)
    key: ec.EllipticCurvePrivateKey
    if settings.ca_key_storage == "pkcs11":
        conf = keys.softhsm2_conf_path(ws.hsm_dir)
        key = keys.open_token_key(
            module_path=settings.pkcs11_module,
            softhsm2_conf=conf if conf.exists() else None,
            token_label=settings.ca_token_label,
            pin=ws.secret(SECRET_PIN),
        )
    else:
        key = keys.load_encrypted_key(ws.ca_dir / ISSUING_KEY, ws.secret(SECRET_ISSUING_PASSPHRASE))
    try:
        return FactoryCa(
            root_cert=root, issuing_cert=issuing, issuing_key=key, profile=device_profile(settings)
        )
    except BaseException:
        _close(key)
        raise


def _close(key: ec.EllipticCurvePrivateKey) -> None:
    close = getattr(key, "close", None)
    if callable(close):
        close()


def existing_ca_material(ws: Workspace) -> list[Path]:
    """The CA files and token store already present in ``ws``."""
    found = [ws.ca_dir / n for n in (ROOT_CERT, ROOT_KEY, ISSUING_CERT, ISSUING_KEY)]
    tokens = ws.hsm_dir / "tokens"
    return [p for p in found if p.exists()] + (
        [tokens] if tokens.is_dir() and any(tokens.iterdir()) else []
    )


def init_workspace_ca(settings: Settings, *, now: datetime, force: bool = False) -> FactoryCa:
    """Create the root and issuing CA keys and certificates in the workspace.

    Keys go where ``settings.ca_key_storage`` says; passphrases and PINs are random dev
    secrets in ``<workspace>/secrets``. Refuses (``ca_exists``) to replace an existing CA
    unless ``force``.
    """
    ws = settings.ws
    existing = existing_ca_material(ws)
    if existing and not force:
        names = ", ".join(str(p.relative_to(ws.root)) for p in existing)
        raise ConfigError(
            f"{ws.root} already holds a CA ({names}); pass --force to replace it",
            code="ca_exists",
        )
    ws.create()
    if force:
        _remove_issuing_key_material(ws)
    root_key = ec.generate_private_key(ec.SECP256R1())
    issuing_key = _create_issuing_key(settings)
    try:
        root, issuing = init_hierarchy(
            organization=settings.organization, now=now, root_key=root_key, issuing_key=issuing_key
        )
        ca = FactoryCa(
            root_cert=root,
            issuing_cert=issuing,
            issuing_key=issuing_key,
            profile=device_profile(settings),
        )
        root_passphrase = ws.secret(SECRET_ROOT_PASSPHRASE, create=True)
        keys.write_encrypted_key(root_key, ws.ca_dir / ROOT_KEY, root_passphrase)
        for name, cert in ((ROOT_CERT, root), (ISSUING_CERT, issuing)):
            pem = cert.public_bytes(Encoding.PEM)
            keys.atomic_write(ws.ca_dir / name, pem, mode=0o644)
            keys.atomic_write(ws.certs_dir / name, pem, mode=0o644)
    except BaseException:
        _close(issuing_key)
        raise
    log.info(
        "factory CA created key_storage=%s issuing=%s",
        settings.ca_key_storage,
        issuing.subject.rfc4514_string(),
    )
    return ca


def _remove_issuing_key_material(ws: Workspace) -> None:
    """Forget the old issuing key: its file and the workspace's own SoftHSM2 token store.

    A token in a real HSM is not touched (its old key makes generation fail: delete it there).
    """
    (ws.ca_dir / ISSUING_KEY).unlink(missing_ok=True)
    shutil.rmtree(ws.hsm_dir / "tokens", ignore_errors=True)


def _create_issuing_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    ws = settings.ws
    if settings.ca_key_storage == "file":
        key = ec.generate_private_key(ec.SECP256R1())
        passphrase = ws.secret(SECRET_ISSUING_PASSPHRASE, create=True)
        keys.write_encrypted_key(key, ws.ca_dir / ISSUING_KEY, passphrase)
        return key
    softhsm = keys.is_softhsm2(settings.pkcs11_module)
    return keys.create_token_key(
        module_path=settings.pkcs11_module,
        hsm_dir=ws.hsm_dir if softhsm else None,
        token_label=settings.ca_token_label,
        so_pin=ws.secret(SECRET_SO_PIN, create=True) if softhsm else "",
        pin=ws.secret(SECRET_PIN, create=softhsm),
    )
