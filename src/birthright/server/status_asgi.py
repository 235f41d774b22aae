"""The public status endpoints as plain ASGI, free of the FastAPI stack: OCSP and the CRL.

Used twice: ``OcspFastPath`` sits in front of the main service's routes, and
``birthright serve-status`` (``server/status_responder.py``) serves these alone.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC
from email.utils import format_datetime

from cryptography.x509.ocsp import OCSPResponseStatus
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from birthright.ca.ocsp import MAX_REQUEST_BYTES, answer_status, unsuccessful
from birthright.observability import metrics
from birthright.revocation.service import RevocationService

log = logging.getLogger(__name__)

CRL_MAX_AGE = 300
OCSP_MAX_AGE = 60


def crl_response(revocation: RevocationService, if_none_match: str | None) -> Response:
    """The current CRL with its cache headers, or 304 when the client's ETag is current."""
    published = revocation.crl()
    etag = f'"{published.number}-{published.digest[:16]}"'
    headers = {
        "Cache-Control": f"public, max-age={CRL_MAX_AGE}",
        "ETag": etag,
        "Last-Modified": format_datetime(published.this_update.astimezone(UTC), usegmt=True),
        "Expires": format_datetime(published.next_update.astimezone(UTC), usegmt=True),
    }
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(published.der, media_type="application/pkix-crl", headers=headers)


class OcspFastPath:
    """Pure ASGI: answers ``POST /ocsp`` and ``GET /ocsp/{base64}`` before the FastAPI stack.

    An OCSP answer is a few microseconds of work (one indexed read, a cached signed answer);
    routing, dependency injection and the catch-all ``http`` middleware cost ten times that.
    Install it inside the body limit and the rate limits, outside the rest. The FastAPI
    routes below stay as the documented (OpenAPI) interface and answer alike.
    """

    def __init__(self, app: ASGIApp, *, revocation: RevocationService) -> None:
        self.app = app
        self._revocation = revocation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/ocsp":
                body = await _read_body(receive)
                if body is not None:  # None: the client went away, or the body limit answered
                    await _send_ocsp(send, self._answer(body))
                return
            if method == "GET" and path.startswith("/ocsp/"):
                await _send_ocsp(send, self._answer_get(path.removeprefix("/ocsp/")))
                return
        await self.app(scope, receive, send)

    def _answer_get(self, request_b64: str) -> bytes:
        try:
            der = base64.b64decode(request_b64, validate=True)
        except (binascii.Error, ValueError):
            return unsuccessful(OCSPResponseStatus.MALFORMED_REQUEST)
        return self._answer(der)

    def _answer(self, der: bytes) -> bytes:
        try:
            answer = self._revocation.ocsp(der)
        except Exception:  # an OCSP client gets an OCSP answer, even to our own bug
            log.exception("OCSP answer failed")
            answer = unsuccessful(OCSPResponseStatus.INTERNAL_ERROR)
        metrics.ocsp_answer(answer_status(answer)).inc()
        return answer


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or ``b""`` past MAX_REQUEST_BYTES (a malformed request)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= MAX_REQUEST_BYTES else b""


_OCSP_HEADERS = [
    (b"content-type", b"application/ocsp-response"),
    (b"cache-control", f"max-age={OCSP_MAX_AGE}".encode()),
]


async def _send_ocsp(send: Send, der: bytes) -> None:
    headers = [*_OCSP_HEADERS, (b"content-length", str(len(der)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": der})
