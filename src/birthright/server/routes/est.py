"""EST (RFC 7030) for standard enrollment clients, over the station's mutual TLS (ADR 0014).

    GET  /.well-known/est[/<label>]/cacerts          the device CA chain, certs-only PKCS#7
    POST /.well-known/est/<work order>/simpleenroll  a station enrolls a unit
    POST /.well-known/est[/<label>]/simplereenroll   a station, or the unit itself, re-enrolls

The optional RFC 7030 label names the work order. Bodies are base64 DER PKCS#10
(``application/pkcs10``); answers base64 DER certs-only PKCS#7. Errors are the HTTP status
RFC 7030 expects with our JSON ``{"code", "message"}`` body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from birthright.ca.verify import verify_device_chain
from birthright.errors import InputError, NotFoundError, TrustError
from birthright.est.service import DeviceCaller
from birthright.est.wire import PKCS7_MIME, PKCS10, certs_only
from birthright.server.backend import Backend
from birthright.server.routes import BackendDep, errors
from birthright.server.tls import peer_certificate_der
from birthright.types import ProductSerial, StationId

router = APIRouter(prefix="/.well-known/est", tags=["est"])

LABEL = r"^[A-Za-z0-9._-]{1,64}$"
_PKCS7: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "base64 DER certs-only PKCS#7 (RFC 7030)",
        "content": {"application/pkcs7-mime": {"schema": {"type": "string"}}},
    }
}
_CSR_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {PKCS10: {"schema": {"type": "string", "description": "base64 DER PKCS#10"}}},
    }
}
_ENROLL_ERRORS = errors(400, 403, 404, 409, 413, 415, 422, 503)


class UnsupportedMediaType(InputError):
    code = "unsupported_media_type"
    http_status = 415


def _pkcs7(certs: list[x509.Certificate], status: int = 200) -> Response:
    return Response(
        certs_only(certs),
        status_code=status,
        media_type=PKCS7_MIME,
        headers={"Content-Transfer-Encoding": "base64"},
    )


def _enabled(backend: Backend) -> None:
    if not backend.est_enabled:
        raise NotFoundError("EST is not enabled on this service", code="est_disabled")


async def _csr_body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != PKCS10:
        raise UnsupportedMediaType(f"an EST request body is {PKCS10}, not {media or 'none'!r}")
    return await request.body()


def _station(backend: Backend, request: Request) -> StationId:
    if backend.station_tls is None:
        raise TrustError("EST station authentication is not configured", code="est_disabled")
    der = peer_certificate_der(request.scope)
    station = backend.station_tls.authenticate(der, path=request.url.path)
    backend.limits.check_station(station)
    return station


def _caller(backend: Backend, request: Request) -> StationId | DeviceCaller:
    """A unit presenting a certificate from the device issuing CA, or else a station."""
    der = peer_certificate_der(request.scope)
    cert = _load(der)
    if cert is None or backend.chain[0].subject != cert.issuer:
        return _station(backend, request)
    issuing, root = backend.chain[0], backend.chain[-1]
    verify_device_chain(cert, [issuing], roots=[root], now=datetime.now(UTC))
    serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(serials) != 1:
        raise TrustError("the device certificate names no serial", code="chain_untrusted")
    return DeviceCaller(ProductSerial(str(serials[0].value)), format(cert.serial_number, "x"))


def _load(der: bytes | None) -> x509.Certificate | None:
    try:
        return x509.load_der_x509_certificate(der) if der else None
    except ValueError:
        return None


def _cacerts(backend: Backend) -> Response:
    _enabled(backend)
    return _pkcs7(list(backend.chain))


@router.get(
    "/cacerts",
    response_class=Response,
    responses={**_PKCS7, **errors(404)},
    summary="EST cacerts: the device issuing CA and root",
)
def cacerts(backend: BackendDep) -> Response:
    return _cacerts(backend)


@router.get(
    "/{label}/cacerts",
    response_class=Response,
    responses={**_PKCS7, **errors(404, 422)},
    summary="EST cacerts under a label (the same chain)",
)
def labelled_cacerts(backend: BackendDep, label: str = Path(pattern=LABEL)) -> Response:
    return _cacerts(backend)


@router.post(
    "/simpleenroll",
    response_class=Response,
    responses=errors(400, 404),
    summary="EST simpleenroll without a label: refused, the label names the work order",
)
def unlabelled_simpleenroll(backend: BackendDep) -> Response:
    _enabled(backend)
    raise InputError(
        "name the work order as the EST label: /.well-known/est/<work order>/simpleenroll",
        code="est_label_required",
    )


@router.post(
    "/{label}/simpleenroll",
    response_class=Response,
    responses={**_PKCS7, **_ENROLL_ERRORS},
    openapi_extra=_CSR_BODY,
    summary="EST simpleenroll: a station enrolls a unit of work order <label>",
)
async def simpleenroll(
    request: Request, backend: BackendDep, label: str = Path(pattern=LABEL)
) -> Response:
    _enabled(backend)
    body = await _csr_body(request)
    station = await run_in_threadpool(_station, backend, request)
    result = await run_in_threadpool(backend.est.simpleenroll, station, label, body)
    return _pkcs7([result.device.certificate])


async def _reenroll(request: Request, backend: Backend) -> Response:
    _enabled(backend)
    body = await _csr_body(request)
    caller = await run_in_threadpool(_caller, backend, request)
    result = await run_in_threadpool(backend.est.simplereenroll, caller, body)
    return _pkcs7([result.device.certificate])


@router.post(
    "/simplereenroll",
    response_class=Response,
    responses={**_PKCS7, **_ENROLL_ERRORS},
    openapi_extra=_CSR_BODY,
    summary="EST simplereenroll: a new certificate for an enrolled, active unit",
)
async def simplereenroll(request: Request, backend: BackendDep) -> Response:
    return await _reenroll(request, backend)


@router.post(
    "/{label}/simplereenroll",
    response_class=Response,
    responses={**_PKCS7, **_ENROLL_ERRORS},
    openapi_extra=_CSR_BODY,
    summary="EST simplereenroll under a label (the unit decides, not the label)",
)
async def labelled_simplereenroll(
    request: Request, backend: BackendDep, label: str = Path(pattern=LABEL)
) -> Response:
    return await _reenroll(request, backend)
