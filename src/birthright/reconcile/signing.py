"""Detached signatures over report files, by the backend's report key (EC P-256).

The signature covers a fixed context string and the exact bytes of the file, so a report
signature can never pass for an audit checkpoint or any other signature. The ``.sig`` file is a
small JSON document: algorithm, key id and the base64 DER signature.

Development storage mirrors the audit key: ``<workspace>/ca/report-key.pem`` (encrypted PKCS#8,
passphrase in the dev secret ``report-passphrase``) and ``report-key.pub.pem``.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.audit.signing import key_id_of
from birthright.ca.keys import (
    load_or_create_key_file,
)
from birthright.errors import ConfigError, InputError, TrustError
from birthright.settings import Settings

CONTEXT = b"birthright-report-v1\n"
KEY_FILE = "report-key.pem"
PUBLIC_KEY_FILE = "report-key.pub.pem"
PASSPHRASE_SECRET = "report-passphrase"  # noqa: S105 - the secret's name, not its value
ALGORITHM = "ES256"


class ReportSignatureInvalid(TrustError):
    code = "report_signature_invalid"


def sign_report(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """The ``.sig`` file contents for ``data``."""
    signature = key.sign(CONTEXT + data, ec.ECDSA(hashes.SHA256()))
    body = {
        "alg": ALGORITHM,
        "context": CONTEXT.decode().strip(),
        "key_id": key_id_of(key.public_key()),
        "signature": base64.b64encode(signature).decode(),
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def verify_report(public_key: ec.EllipticCurvePublicKey, data: bytes, sig_file: bytes) -> str:
    """Return the signing key id, or raise ``ReportSignatureInvalid``."""
    try:
        body = json.loads(sig_file)
        signature = base64.b64decode(body["signature"], validate=True)
        key_id = str(body["key_id"])
        alg = body["alg"]
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise InputError("the signature file is malformed", code="signature_malformed") from e
    if alg != ALGORITHM:
        raise ReportSignatureInvalid(f"unsupported signature algorithm {alg!r}")
    if key_id != key_id_of(public_key):
        raise ReportSignatureInvalid(f"signed by key {key_id}, not this workspace's report key")
    try:
        public_key.verify(signature, CONTEXT + data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise ReportSignatureInvalid(
            "the report does not match its signature: it was changed after signing"
        ) from e
    return key_id


def load_or_create_report_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The workspace's report key, created (first writer wins) on first use."""
    ws = settings.ws
    return load_or_create_key_file(
        ws.ca_dir / KEY_FILE,
        ws.ca_dir / PUBLIC_KEY_FILE,
        ws.secret(PASSPHRASE_SECRET, create=True),
    )


def load_report_public_key(settings: Settings) -> ec.EllipticCurvePublicKey:
    path: Path = settings.ws.ca_dir / PUBLIC_KEY_FILE
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(f"no report key at {path}", code="report_key_missing") from e
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM public key", code="report_key_invalid") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{path} is not EC P-256", code="report_key_type")
    return key
