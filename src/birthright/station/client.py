"""The backend's HTTP API as the station and device agent see it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509

from birthright.errors import BirthrightError, InputError, TransientError, TrustError


class BackendRefused(InputError):
    """The backend answered with a JSON error; ``code`` is the backend's."""


class BackendUntrusting(TrustError):
    """The backend refused on trust grounds (403)."""


@dataclass(frozen=True)
class Enrolled:
    serial: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    created: bool


class BackendClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0, **httpx_args: Any) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, **httpx_args)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as e:
            raise TransientError(
                f"backend unreachable at {self._http.base_url}: {type(e).__name__}",
                code="backend_unavailable",
            ) from e
        return _json_or_raise(response)

    def health(self) -> bool:
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def reserve_serial(self, *, station_id: str, work_order_id: str, chip_id: str) -> str:
        body = self._post(
            "/v1/serials",
            {"station_id": station_id, "work_order_id": work_order_id, "chip_id": chip_id},
        )
        return str(body["serial"])

    def se_challenge(
        self, *, station_id: str, work_order_id: str, chip_id: str, request: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A genuine-SE challenge for a chip that needs one (TPM credential activation)."""
        return self._post(
            "/v1/se-challenges",
            {
                "station_id": station_id,
                "work_order_id": work_order_id,
                "chip_id": chip_id,
                "request": dict(request),
            },
        )

    def enroll(
        self,
        *,
        station_id: str,
        work_order_id: str,
        serial: str,
        chip_id: str,
        csr_der: bytes,
        se_proof: Mapping[str, Any] | None = None,
    ) -> Enrolled:
        """Enroll a unit; ``se_proof`` is the chip's genuine-SE proof object, if it has one."""
        request: dict[str, Any] = {
            "station_id": station_id,
            "work_order_id": work_order_id,
            "serial": serial,
            "chip_id": chip_id,
            "csr": base64.b64encode(csr_der).decode(),
        }
        if se_proof is not None:
            request["se_proof"] = dict(se_proof)
        body = self._post("/v1/enrollments", request)
        return Enrolled(
            serial=body["serial"],
            certificate=x509.load_pem_x509_certificate(body["certificate"].encode()),
            chain=tuple(x509.load_pem_x509_certificate(c.encode()) for c in body["chain"]),
            created=bool(body["created"]),
        )

    def challenge(self, serial: str) -> str:
        return str(self._post("/v1/attestations/challenges", {"serial": serial})["nonce"])

    def attest(
        self, *, evidence: bytes, chain_pem: list[str], signature: bytes | None = None
    ) -> dict[str, Any]:
        """Present evidence: an EAT COSE_Sign1 alone, or v1 JSON evidence with its signature."""
        body: dict[str, Any] = {"evidence": base64.b64encode(evidence).decode(), "chain": chain_pem}
        if signature is not None:
            body["signature"] = base64.b64encode(signature).decode()
        return self._post("/v1/attestations", body)

    def device_auth_challenge(self, serial: str) -> tuple[str, str]:
        """A device-auth nonce for ``serial`` and the audience the token must name."""
        body = self._post("/v1/device-auth/challenges", {"serial": serial})
        return str(body["nonce"]), str(body["audience"])

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path``; the JSON answer, or the refusal as our error tree."""
        return self._post(path, body)

    def device_authenticate(self, *, token: bytes, chain_pem: list[str]) -> dict[str, Any]:
        body = {"token": base64.b64encode(token).decode(), "chain": chain_pem}
        return self._post("/v1/device-auth", body)


def _json_or_raise(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    code = body.get("code", "unknown") if isinstance(body, dict) else "unknown"
    message = body.get("message", response.text[:200]) if isinstance(body, dict) else ""
    error: BirthrightError
    if response.status_code >= 500 or response.status_code == 429:
        error = TransientError(f"backend error {response.status_code}: {message}", code=code)
    elif response.status_code == 403:
        error = BackendUntrusting(message, code=code)
    else:
        error = BackendRefused(message, code=code)
    raise error
