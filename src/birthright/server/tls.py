"""Serving over mutual TLS with uvicorn, and handing the station's certificate to the app.

The server context asks for a client certificate (``CERT_OPTIONAL``) and trusts the station CA
alone, as a partial-chain anchor: a certificate from any other CA — including the device
issuing CA under the same root — fails the TLS handshake itself, before any HTTP. A client
without a certificate gets through the handshake; the app then refuses it
(``client_cert_required``) and audits the refusal.

uvicorn (0.54) does not put the peer certificate into the ASGI scope. ``MtlsH11Protocol``
does, in the standard ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``,
PEM): asyncio calls a protocol's ``connection_made`` only after the TLS handshake, so the
protocol reads ``ssl_object.getpeercert(binary_form=True)`` once per connection and wraps the
app for that connection. It relies on two long-standing uvicorn attributes,
``H11Protocol.connection_made`` and ``H11Protocol.app``, and is selected with ``http=`` (the
default ``auto`` would pick httptools when installed, which this does not cover).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.h11_impl import H11Protocol

from birthright.ca.station import ServerTlsFiles
from birthright.errors import ConfigError

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


def mtls_uvicorn_options(
    files: ServerTlsFiles, *, also_trust: Sequence[x509.Certificate] = ()
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that serve mutual TLS."""
    context = server_ssl_context(files, also_trust=also_trust)

    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return {"ssl_context_factory": factory, "http": MtlsH11Protocol}


class MtlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that adds the ASGI TLS extension to every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return
        der = ssl_object.getpeercert(binary_form=True)
        tls: dict[str, Any] = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": None,
        }
        inner = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") == "http":
                scope = {**scope, "extensions": {**scope.get("extensions", {}), "tls": tls}}
            await inner(scope, receive, send)

        self.app = with_tls


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
