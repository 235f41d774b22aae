"""A minimal EST (RFC 7030) client: what a standard EST client sends and how it reads answers.

Used by the demo and the tests beside curl + openssl. It authenticates with whatever TLS
client certificate its ``ssl.SSLContext`` presents (a station's, or a unit's own).
"""

from __future__ import annotations

import base64
import ssl

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from birthright.errors import BirthrightError, TransientError
from birthright.est.wire import PKCS10

PREFIX = "/.well-known/est"


class EstRefused(BirthrightError):
    """The EST server refused; ``code`` and ``status`` are the server's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class EstClient:
    def __init__(self, base_url: str, *, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), verify=context, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EstClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def cacerts(self) -> list[x509.Certificate]:
        return self._certs(self._send("GET", f"{PREFIX}/cacerts"))

    def simpleenroll(self, label: str, csr_der: bytes) -> x509.Certificate:
        return self._certs(self._send("POST", f"{PREFIX}/{label}/simpleenroll", csr_der))[0]

    def simplereenroll(self, csr_der: bytes) -> x509.Certificate:
        return self._certs(self._send("POST", f"{PREFIX}/simplereenroll", csr_der))[0]

    def _send(self, method: str, path: str, csr_der: bytes | None = None) -> httpx.Response:
        content = base64.encodebytes(csr_der) if csr_der is not None else None
        headers = {"Content-Type": PKCS10} if content is not None else {}
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as e:
            raise TransientError(
                f"EST server unreachable: {type(e).__name__}", code="backend_unavailable"
            ) from e
        if response.status_code != 200:
            try:
                body = response.json()
                code, message = str(body["code"]), str(body["message"])
            except (ValueError, KeyError, TypeError):
                code, message = f"http_{response.status_code}", response.text[:200]
            raise EstRefused(response.status_code, code, message)
        return response

    @staticmethod
    def _certs(response: httpx.Response) -> list[x509.Certificate]:
        if not response.headers.get("content-type", "").startswith("application/pkcs7-mime"):
            raise EstRefused(response.status_code, "est_bad_answer", "not a PKCS#7 answer")
        return pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))
