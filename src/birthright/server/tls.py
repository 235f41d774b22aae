"""Serving over mutual TLS with uvicorn, and handing the station's certificate to the app.

The server context asks for a client certificate (``CERT_OPTIONAL``) and trusts the station CA
alone, as a partial-chain anchor: a certificate from any other CA — including the device
issuing CA under the same root — fails the TLS handshake itself, before any HTTP. A client
without a certificate gets through the handshake; the app then refuses it
(``client_cert_required``) and audits the refusal.

uvicorn (0.54) does not put the peer certificate into the ASGI scope. ``MtlsHttpToolsProtocol``
does, in the standard ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``,
PEM): asyncio calls a protocol's ``connection_made`` only after the TLS handshake, so the
protocol reads ``ssl_object.getpeercert(binary_form=True)`` once per connection and wraps the
app for that connection. It relies on two long-standing uvicorn attributes of both its HTTP
protocols, ``connection_made`` and ``app``, and is selected with ``http=``. The protocol is
uvicorn's ``httptools`` one (a C parser) on ``uvloop``; ``MtlsH11Protocol`` is the same on
the pure-Python ``h11`` parser, kept for a setup without ``httptools``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from birthright.ca.station import ServerTlsFiles, server_tls_files
from birthright.errors import ConfigError
from birthright.workspace import Workspace

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def server_ssl_context(
    files: ServerTlsFiles, *, also_trust: Sequence[x509.Certificate] = ()
) -> ssl.SSLContext:
    """TLS ≥ 1.2, the service's chain and encrypted key, station certificates verified if sent.

    ``also_trust`` adds client-certificate anchors: with EST on, the device issuing CA, so a
    unit can re-enroll with its current certificate (ADR 0014). The app still checks which
    CA issued a certificate before it accepts it for anything.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(files.certfile), str(files.keyfile), password=files.password)
        context.load_verify_locations(cafile=str(files.client_ca_file))
        for anchor in also_trust:
            context.load_verify_locations(cadata=anchor.public_bytes(Encoding.PEM).decode())
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"cannot load the server's TLS files: {e}", code="server_tls") from e
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


@dataclass(frozen=True)
class WorkspaceTlsContext:
    """A picklable ``ssl_context_factory``: each worker process (``serve --workers N``, which
    spawns fresh interpreters) loads the workspace's TLS files itself."""

    workspace: Path
    #: Extra client-certificate anchors (DER), as ``mtls_uvicorn_options``'s ``also_trust``.
    also_trust_der: tuple[bytes, ...] = ()

    def __call__(
        self, _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        also_trust = [x509.load_der_x509_certificate(der) for der in self.also_trust_der]
        return server_ssl_context(
            server_tls_files(Workspace(self.workspace)), also_trust=also_trust
        )


def mtls_worker_options(
    workspace: Path, *, also_trust: Sequence[x509.Certificate] = ()
) -> dict[str, Any]:
    """Like :func:`mtls_uvicorn_options`, for worker processes: nothing but paths is passed."""
    der = tuple(c.public_bytes(Encoding.DER) for c in also_trust)
    return {
        "ssl_context_factory": WorkspaceTlsContext(workspace, der),
        "http": MtlsHttpToolsProtocol,
        "loop": "uvloop",
    }


def mtls_uvicorn_options(
    files: ServerTlsFiles, *, also_trust: Sequence[x509.Certificate] = ()
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that serve mutual TLS."""
    context = server_ssl_context(files, also_trust=also_trust)

    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return {"ssl_context_factory": factory, "http": MtlsHttpToolsProtocol, "loop": "uvloop"}


def _with_tls_extension(app: Any, transport: asyncio.BaseTransport) -> Any:
    """``app`` wrapped to carry this connection's TLS facts in every HTTP request's scope."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return app
    der = ssl_object.getpeercert(binary_form=True)
    tls: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }

    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            scope = {**scope, "extensions": {**scope.get("extensions", {}), "tls": tls}}
        await app(scope, receive, send)

    return with_tls


class MtlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that adds the ASGI TLS extension to every request."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_tls_extension(self.app, transport)


class MtlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that adds the ASGI TLS extension to every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _with_tls_extension(self.app, transport)


def peer_certificate_der(scope: Any) -> bytes | None:
    """DER of the TLS client certificate from the ASGI TLS extension, if one was presented."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(str(chain[0]))


def request_url(scope: Any) -> str:
    """The absolute URL as the client sent it, from ``raw_path`` (never the decoded path)."""
    host = next((v for k, v in scope.get("headers", []) if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = (server[0] if server[1] is None else f"{server[0]}:{server[1]}").encode("ascii")
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    query = scope.get("query_string", b"")
    url = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}{raw_path.decode('latin-1')}"
    return url + (f"?{query.decode('latin-1')}" if query else "")
