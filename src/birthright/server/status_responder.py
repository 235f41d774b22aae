"""The status responder: OCSP and the CRL over plain HTTP, in a process of their own.

Relying parties ask for status far more often than stations enroll, and RFC 5019 and the
certificates' AIA and CRL distribution point (``http://…``) say plain HTTP: the answers are
signed, so TLS adds nothing but cost. ``birthright serve-status`` runs this small ASGI app
— no FastAPI stack, no access-log line per answer, uvicorn's ``httptools`` parser and
``uvloop``, as many worker processes as asked — beside the main service, on the same
database. Each worker holds the issuing CA's signer and its own cache of signed answers; the
status is read from the database on every request, so a revocation made through any replica
is answered at once.

Served: ``POST /ocsp``, ``GET /ocsp/{base64}``, ``GET /crl/issuing.crl`` (ETag, 304),
``GET /healthz``. Anything else is a JSON 404 / 405 with a stable code.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from starlette.types import Receive, Scope, Send

from birthright.ca.authority import load_factory_ca
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.revocation import SqlRevocationStore
from birthright.revocation.publish import IssuingCaSigner
from birthright.revocation.service import RevocationService
from birthright.server.status_asgi import OcspFastPath, crl_response
from birthright.settings import Settings, load_settings

#: How ``app_from_environment`` finds the workspace in each worker process.
WORKSPACE_ENV = "BIRTHRIGHT_STATUS_WORKSPACE"
CRL_PATH = "/crl/issuing.crl"


def build_revocation(settings: Settings) -> tuple[RevocationService, Engine]:
    engine = make_engine(settings.effective_database_url)
    ca = load_factory_ca(settings)
    service = RevocationService(
        store=SqlRevocationStore(make_sessionmaker(engine)),
        signer=IssuingCaSigner(issuer_cert=ca.issuing_cert, issuer_key=ca.issuing_key),
        clock=lambda: datetime.now(UTC),
    )
    return service, engine


class _Rest:
    """Everything the OCSP fast path does not answer: the CRL, health, JSON errors."""

    def __init__(self, revocation: RevocationService) -> None:
        self._revocation = revocation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == CRL_PATH and method in ("GET", "HEAD"):
            etag = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
            response = crl_response(self._revocation, None if etag is None else etag.decode())
            await response(scope, receive, send)
        elif path == "/healthz" and method == "GET":
            await _json(send, 200, {"status": "ok"})
        elif path in (CRL_PATH, "/healthz", "/ocsp") or path.startswith("/ocsp/"):
            await _json(send, 405, {"code": "method_not_allowed", "message": "method not allowed"})
        else:
            message = "the status responder serves /ocsp and /crl/issuing.crl only"
            await _json(send, 404, {"code": "not_found", "message": message})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def create_status_app(revocation: RevocationService) -> OcspFastPath:
    return OcspFastPath(_Rest(revocation), revocation=revocation)


def app_from_environment() -> OcspFastPath:
    """The app factory each uvicorn worker calls (``factory=True``)."""
    settings = load_settings(Path(os.environ[WORKSPACE_ENV]))
    revocation, _engine = build_revocation(settings)
    return create_status_app(revocation)
