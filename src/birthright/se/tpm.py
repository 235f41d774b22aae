"""TPM 2.0 secure elements, driven through tpm2-pytss (swtpm in development, chips in the field).

Objects on the TPM:

- storage root key, persistent at ``SRK_HANDLE`` (a deterministic ECC primary);
- identity key, persistent at ``IDENTITY_HANDLE``: P-256 ECDSA-SHA256, sign-only, fixedTPM,
  fixedParent, sensitiveDataOrigin: created in and never leaving this TPM;
- attestation key (AK), persistent at ``AK_HANDLE``: the same, plus *restricted*, so it signs
  only structures the TPM itself produced (quotes, certify statements);
- the endorsement key is re-created from its template when needed; its certificate (from the
  TPM vendor, in NV at ``EK_CERT_INDEX``) gives the chip id and the genuineness proof;
- the certificate chain, in owner NV indices from ``CHAIN_INDEX``.

swtpm holds about three objects at once and has no resource manager: every transient object
is flushed as soon as it is used.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

os.environ.setdefault("TSS2_LOG", "all+none")  # ESYS logs expected misses (absent handles)

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from tpm2_pytss import (
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2_RH,
    TPM2_ST,
    TPM2B_DIGEST,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_NV_PUBLIC,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMA_NV,
    TPMA_OBJECT,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_NV_PUBLIC,
    TPMT_HA,
    TPMT_SIG_SCHEME,
    TPMT_TK_HASHCHECK,
    TPMU_HA,
    TCTILdr,
    TSS2_Exception,
)
from tpm2_pytss.utils import NVReadEK, create_ek_template

from birthright.errors import DeviceError
from birthright.se.signer import ExternalKeySigner
from birthright.se.tpm_ecdh import KA_ATTRIBUTES, KA_HANDLE, ka_template, zgen
from birthright.tpm.ek import chip_id_from_ek
from birthright.tpm.quote import (
    FIRMWARE_PCR,
    certify_qualifying_data,
    pcr_after,
    quote_qualifying_data,
)
from birthright.tpm.wire import parse_public, parse_signature
from birthright.types import ChipId

SRK_HANDLE = 0x81000001
IDENTITY_HANDLE = 0x81000010  # owner range; 0x8101xxxx holds the EKs
AK_HANDLE = 0x81000011
EK_CERT_INDEX = 0x01C00016  # TCG: ECC NIST P-384 EK certificate (high range, template H-3)
EK_TYPE = "EK-HIGH-ECC384"
CHAIN_INDEX = 0x01500100
CHAIN_INDICES = 4
NV_INDEX_MAX = 2048
NV_BUFFER_MAX = 1024
PROOF_KIND = "tpm"

_BASE = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
)
IDENTITY_ATTRIBUTES = _BASE | TPMA_OBJECT.SIGN_ENCRYPT
AK_ATTRIBUTES = _BASE | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.RESTRICTED
SRK_ATTRIBUTES = _BASE | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT
_NULL_SCHEME = TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
_FIRMWARE_SELECTION = f"sha256:{FIRMWARE_PCR}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TpmSecureElement:
    """The ``SecureElement`` of a TPM 2.0, reached through a TCTI (``swtpm:path=…``)."""

    def __init__(self, esapi: ESAPI, *, on_close: Callable[[], None] | None = None) -> None:
        self._esapi = esapi
        self._on_close = on_close
        self._ek_cert_der = self._read_nv(EK_CERT_INDEX, what="EK certificate")
        try:
            self._ek_cert = x509.load_der_x509_certificate(self._ek_cert_der)
        except ValueError as e:
            raise DeviceError("the TPM's EK certificate does not parse", code="tpm_ek") from e
        self._chip_id = chip_id_from_ek(self._ek_cert)

    @classmethod
    def open(cls, tcti: str, *, on_close: Callable[[], None] | None = None) -> TpmSecureElement:
        """Connect to a TPM; ``tcti`` is ``name:config``, e.g. ``swtpm:path=/run/tpm.sock``."""
        name, _, config = tcti.partition(":")
        try:
            esapi = ESAPI(TCTILdr(name, config))
        except TSS2_Exception as e:
            raise DeviceError(f"cannot reach the TPM at {tcti}: {e}", code="tpm_unreachable") from e
        try:
            return cls(esapi, on_close=on_close)
        except BaseException:
            esapi.close()
            raise

    def close(self) -> None:
        self._esapi.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> TpmSecureElement:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- SecureElement -------------------------------------------------------------------

    @property
    def chip_id(self) -> ChipId:
        return self._chip_id

    def generate_identity_key(self) -> ec.EllipticCurvePublicKey:
        self._evict(IDENTITY_HANDLE)
        self._create_persistent(IDENTITY_ATTRIBUTES, IDENTITY_HANDLE)
        key = self.identity_public_key()
        assert key is not None
        return key

    def identity_public_key(self) -> ec.EllipticCurvePublicKey | None:
        area = self._public_area(IDENTITY_HANDLE)
        return parse_public(area).public_key if area is not None else None

    def identity_signer(self) -> ec.EllipticCurvePrivateKey:
        key = self.identity_public_key()
        if key is None:
            raise DeviceError("the TPM holds no identity key yet", code="key_missing")
        return ExternalKeySigner(key, self._sign_digest)

    def sign(self, data: bytes) -> bytes:
        return self._sign_digest(hashlib.sha256(data).digest())

    def key_agreement_public_key(self) -> ec.EllipticCurvePublicKey:
        """The decrypt-only key envelopes are sealed to, made in the TPM on first use."""
        if self._persistent(KA_HANDLE) is None:
            self._create_persistent(KA_ATTRIBUTES, KA_HANDLE, ka_template())
        area = self._public_area(KA_HANDLE)
        assert area is not None
        return parse_public(area).public_key

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        key = self._persistent(KA_HANDLE)
        if key is None:
            raise DeviceError("the TPM holds no key-agreement key yet", code="key_missing")
        with self._tpm("key agreement"):
            return zgen(self._esapi, key, peer)

    def store_chain(self, chain: Sequence[x509.Certificate]) -> None:
        blob = b"".join(
            len(der).to_bytes(2, "big") + der
            for der in (c.public_bytes(Encoding.DER) for c in chain)
        )
        chunks = [blob[i : i + NV_INDEX_MAX] for i in range(0, len(blob), NV_INDEX_MAX)]
        if len(chunks) > CHAIN_INDICES:
            raise DeviceError("the certificate chain does not fit the TPM's NV space")
        with self._tpm("storing the certificate chain"):
            for i in range(CHAIN_INDICES):
                handle = self._nv_handle(CHAIN_INDEX + i)
                if handle is not None:
                    self._esapi.nv_undefine_space(handle, auth_handle=ESYS_TR.OWNER)
            for i, chunk in enumerate(chunks):
                self._nv_write(CHAIN_INDEX + i, chunk)

    def read_chain(self) -> list[x509.Certificate]:
        blob = b""
        for i in range(CHAIN_INDICES):
            if self._nv_handle(CHAIN_INDEX + i) is None:
                break
            blob += self._read_nv(CHAIN_INDEX + i, what="certificate chain")
        certs, at = [], 0
        try:
            while at < len(blob):
                size = int.from_bytes(blob[at : at + 2], "big")
                certs.append(x509.load_der_x509_certificate(blob[at + 2 : at + 2 + size]))
                at += 2 + size
        except ValueError as e:
            raise DeviceError("the chain stored in the TPM does not parse") from e
        return certs

    # -- firmware measurement and quotes ---------------------------------------------------

    def firmware_pcr(self) -> bytes:
        """The current value of the firmware PCR (SHA-256 bank)."""
        with self._tpm("reading the firmware PCR"):
            _, _, digests = self._esapi.pcr_read(TPML_PCR_SELECTION.parse(_FIRMWARE_SELECTION))
        return bytes(digests[0])

    def measure_firmware(self, measurement: bytes) -> bytes:
        """Extend ``measurement`` (SHA-256 of the image) into the firmware PCR; return it."""
        before = self.firmware_pcr()
        value = TPML_DIGEST_VALUES(
            [TPMT_HA(hashAlg=TPM2_ALG.SHA256, digest=TPMU_HA(sha256=measurement))]
        )
        with self._tpm("measuring firmware"):
            self._esapi.pcr_extend(getattr(ESYS_TR, f"PCR{FIRMWARE_PCR}"), value)
        return pcr_after(measurement, before)

    def quote(self, nonce: str) -> tuple[bytes, bytes]:
        """A quote of the firmware PCR by the AK, for ``nonce``: (TPMS_ATTEST, TPMT_SIGNATURE)."""
        ak = self._ensure_ak()
        with self._tpm("quoting the firmware PCR"):
            attest, signature = self._esapi.quote(
                ak,
                TPML_PCR_SELECTION.parse(_FIRMWARE_SELECTION),
                quote_qualifying_data(nonce),
                _NULL_SCHEME,
            )
        return bytes(attest), signature.marshal()

    # -- genuineness: EK certificate, credential activation, certify ------------------------

    def se_proof_request(self) -> dict[str, Any]:
        """What the backend needs to challenge this TPM: its EK certificate and AK."""
        self._ensure_ak()
        area = self._public_area(AK_HANDLE)
        assert area is not None
        return {"kind": PROOF_KIND, "ek_cert": _b64(self._ek_cert_der), "ak_public": _b64(area)}

    def answer_se_challenge(self, challenge: Mapping[str, Any]) -> dict[str, Any]:
        """Recover the backend's secret (only this TPM's EK can, only for this AK), then have
        the AK certify the identity key with that secret as qualifying data."""
        try:
            blob, _ = TPM2B_ID_OBJECT.unmarshal(base64.b64decode(challenge["credential_blob"]))
            secret_in, _ = TPM2B_ENCRYPTED_SECRET.unmarshal(
                base64.b64decode(challenge["encrypted_secret"])
            )
            token = str(challenge["token"])
        except (KeyError, ValueError, TypeError, TSS2_Exception) as e:
            raise DeviceError("the backend's credential challenge is malformed") from e
        ak = self._ensure_ak()
        identity = self._persistent(IDENTITY_HANDLE)
        if identity is None:
            raise DeviceError("the TPM holds no identity key yet", code="key_missing")
        with self._tpm("activating the credential"):
            _, template = create_ek_template(EK_TYPE, NVReadEK(self._esapi))
            ek = self._esapi.create_primary(
                TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.ENDORSEMENT
            )[0]
            try:
                secret = bytes(
                    self._esapi.activate_credential(
                        ak,
                        ek,
                        blob,
                        secret_in,
                        session1=ESYS_TR.PASSWORD,
                        session2=ESYS_TR.PASSWORD,
                    )
                )
            finally:
                self._esapi.flush_context(ek)
        with self._tpm("certifying the identity key"):
            info, signature = self._esapi.certify(
                identity, ak, certify_qualifying_data(secret), _NULL_SCHEME
            )
        areas = {h: self._public_area(h) for h in (AK_HANDLE, IDENTITY_HANDLE)}
        return {
            "kind": PROOF_KIND,
            "token": token,
            "ak_public": _b64(areas[AK_HANDLE] or b""),
            "identity_public": _b64(areas[IDENTITY_HANDLE] or b""),
            "certify_info": _b64(bytes(info)),
            "certify_signature": _b64(signature.marshal()),
        }

    # -- internals --------------------------------------------------------------------------

    def _tpm(self, doing: str) -> _TpmCall:
        return _TpmCall(doing)

    def _sign_digest(self, digest: bytes) -> bytes:
        key = self._persistent(IDENTITY_HANDLE)
        if key is None:
            raise DeviceError("the TPM holds no identity key yet", code="key_missing")
        ticket = TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)
        with self._tpm("signing"):
            signature = self._esapi.sign(key, TPM2B_DIGEST(digest), _NULL_SCHEME, ticket)
        return parse_signature(signature.marshal())

    def _persistent(self, handle: int) -> ESYS_TR | None:
        try:
            return self._esapi.tr_from_tpmpublic(handle)
        except TSS2_Exception:
            return None

    def _public_area(self, handle: int) -> bytes | None:
        tr = self._persistent(handle)
        if tr is None:
            return None
        with self._tpm("reading a public key"):
            public, _, _ = self._esapi.read_public(tr)
        return bytes(public.publicArea.marshal())

    def _evict(self, handle: int) -> None:
        tr = self._persistent(handle)
        if tr is not None:
            with self._tpm("removing a key"):
                self._esapi.evict_control(ESYS_TR.OWNER, tr, handle)

    def _srk(self) -> ESYS_TR:
        srk = self._persistent(SRK_HANDLE)
        if srk is not None:
            return srk
        template = TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=SRK_ATTRIBUTES)
        with self._tpm("creating the storage root key"):
            primary = self._esapi.create_primary(TPM2B_SENSITIVE_CREATE(), template, ESYS_TR.OWNER)[
                0
            ]
            try:
                return self._esapi.evict_control(ESYS_TR.OWNER, primary, SRK_HANDLE)
            finally:
                self._esapi.flush_context(primary)

    def _create_persistent(
        self, attributes: TPMA_OBJECT, handle: int, template: TPM2B_PUBLIC | None = None
    ) -> ESYS_TR:
        srk = self._srk()
        if template is None:
            template = TPM2B_PUBLIC.parse("ecc256:ecdsa-sha256:null", objectAttributes=attributes)
        with self._tpm("generating a key"):
            private, public, *_ = self._esapi.create(srk, TPM2B_SENSITIVE_CREATE(), template)
            loaded = self._esapi.load(srk, private, public)
            try:
                return self._esapi.evict_control(ESYS_TR.OWNER, loaded, handle)
            finally:
                self._esapi.flush_context(loaded)

    def _ensure_ak(self) -> ESYS_TR:
        return self._persistent(AK_HANDLE) or self._create_persistent(AK_ATTRIBUTES, AK_HANDLE)

    def _nv_handle(self, index: int) -> ESYS_TR | None:
        return self._persistent(index)

    def _read_nv(self, index: int, *, what: str) -> bytes:
        handle = self._nv_handle(index)
        if handle is None:
            raise DeviceError(f"the TPM holds no {what}", code="tpm_nv_missing")
        with self._tpm(f"reading the {what}"):
            public, _ = self._esapi.nv_read_public(handle)
            size, data = public.nvPublic.dataSize, b""
            while len(data) < size:
                n = min(NV_BUFFER_MAX, size - len(data))
                data += bytes(self._esapi.nv_read(handle, n, len(data)))
        return data

    def _nv_write(self, index: int, data: bytes) -> None:
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=index,
                nameAlg=TPM2_ALG.SHA256,
                attributes=TPMA_NV.OWNERWRITE
                | TPMA_NV.OWNERREAD
                | TPMA_NV.AUTHREAD
                | TPMA_NV.NO_DA,
                dataSize=len(data),
            )
        )
        handle = self._esapi.nv_define_space(None, public, auth_handle=ESYS_TR.OWNER)
        for at in range(0, len(data), NV_BUFFER_MAX):
            self._esapi.nv_write(
                handle, data[at : at + NV_BUFFER_MAX], at, auth_handle=ESYS_TR.OWNER
            )


class _TpmCall:
    """Turn a TSS error into a ``DeviceError`` that says what was being done."""

    def __init__(self, doing: str) -> None:
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(e, TSS2_Exception):
            raise DeviceError(f"the TPM failed {self._doing}: {e}", code="tpm_error") from e
