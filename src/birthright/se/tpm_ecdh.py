"""The TPM's key-agreement key: a separate, decrypt-only P-256 key for TPM2_ECDH_ZGen.

The identity key is sign-only (``SIGN_ENCRYPT`` without ``DECRYPT``), and a TPM refuses
ECDH_ZGen with it; one key per use also keeps signatures and key agreement apart (ADR 0010).
The key is born in the TPM (fixedTPM, sensitiveDataOrigin), persistent at ``KA_HANDLE``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from tpm2_pytss import ESAPI, ESYS_TR, TPM2B_ECC_POINT, TPM2B_PUBLIC, TPMA_OBJECT, TPMS_ECC_POINT

KA_HANDLE = 0x81000012
KA_ATTRIBUTES = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
    | TPMA_OBJECT.DECRYPT
)
KA_TEMPLATE = "ecc256:null:null"


def ka_template() -> TPM2B_PUBLIC:
    return TPM2B_PUBLIC.parse(KA_TEMPLATE, objectAttributes=KA_ATTRIBUTES)


def zgen(esapi: ESAPI, key: ESYS_TR, peer: ec.EllipticCurvePublicKey) -> bytes:
    """Z = x(d * peer) computed by the TPM; the caller holds the TPM call guard."""
    numbers = peer.public_numbers()
    point = TPM2B_ECC_POINT(
        point=TPMS_ECC_POINT(x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))
    )
    out = esapi.ecdh_zgen(key, point)
    return bytes(out.point.x).rjust(32, b"\x00")
