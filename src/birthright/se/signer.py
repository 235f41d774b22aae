"""Adapt a key that lives outside the process (token, TPM) to ``cryptography``'s key API.

``cryptography``'s CSR and certificate builders accept a subclass of
``ec.EllipticCurvePrivateKey`` and call its ``sign()``. That is undocumented behaviour, pinned
by ``tests/unit/test_signer.py``. The host hashes; the chip signs the digest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.utils import Buffer

from birthright.errors import DeviceError

#: Signs a SHA-256 digest on chip and returns the DER-encoded ECDSA signature.
DigestSigner = Callable[[bytes], bytes]


class ExternalKeySigner(ec.EllipticCurvePrivateKey):
    """An EC private key whose secret never enters this process."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, sign_digest: DigestSigner) -> None:
        self._public_key = public_key
        self._sign_digest = sign_digest

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    def sign(
        self,
        data: Buffer,
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise DeviceError("only ECDSA signatures are supported by an external key")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, utils.Prehashed):
            digest = bytes(data)
        elif isinstance(algorithm, hashes.SHA256):
            h = hashes.Hash(hashes.SHA256())
            h.update(bytes(data))
            digest = h.finalize()
        else:
            raise DeviceError(f"unsupported hash for an external key: {algorithm.name}")
        return self._sign_digest(digest)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise DeviceError("this external key does not support key agreement")

    def private_numbers(self) -> NoReturn:
        raise DeviceError("the private key lives in a secure element and cannot be exported")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> NoReturn:
        raise DeviceError("the private key lives in a secure element and cannot be exported")

    def __copy__(self) -> ExternalKeySigner:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ExternalKeySigner:
        return self
