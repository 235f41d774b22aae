"""Who is calling: a station, proved by its TLS client certificate and its request signature.

``StationRequestVerifier.authenticate`` takes plain values (``SignedRequest``: method, URL
rebuilt from the raw path, header lines, body bytes, the TLS peer certificate) and three ports:
``StationDirectory`` (keys and status), ``CounterLedger`` (the atomic counter check, which
also suspends a station on a fork or regression) and ``RefusalLog`` (every refusal is
audited). It returns the station id or raises a ``TrustError`` with a stable code:

    client_cert_required   no TLS client certificate
    client_cert_untrusted  the certificate was not issued by the station CA
    client_cert_mismatch   the certificate names another station than the signature's keyid,
                           or is not the TLS certificate registered for the station
    signature_missing      no Signature / Signature-Input
    signature_invalid      malformed, wrong coverage or algorithm, digest or signature wrong
    station_unknown        keyid names no station with a registered signing key
    station_suspended / station_revoked
    request_stale          ``created`` more than ``max_skew`` from the server's clock
    request_replayed       this exact request (same counter, same signature base) was seen
    counter_fork           same counter, different request: a clone; the station is suspended
    counter_regressed      counter below the last accepted and never seen: suspended too

``authenticated_station`` is the FastAPI dependency; it expects the verifier in
``app.state.station_auth``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, Request
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    VerifyResult,
)
from starlette.concurrency import run_in_threadpool

from birthright.ca.station import check_station_id, verify_station_cert
from birthright.errors import BirthrightError, ConfigError, InputError, TrustError
from birthright.server.tls import peer_certificate_der, request_url
from birthright.station.signing import ALGORITHM, MAX_COUNTER, SIGNED_COMPONENTS
from birthright.types import StationId

DEFAULT_MAX_SKEW = timedelta(seconds=300)
_COUNTER_COMPONENT = '"station-counter"'
_VERIFIED_CERTS_KEPT = 4096


class StationAuthError(TrustError):
    """A station request was refused; ``code`` says why."""


class ClientCertRequired(StationAuthError):
    code = "client_cert_required"


class ClientCertMismatch(StationAuthError):
    code = "client_cert_mismatch"


class SignatureMissing(StationAuthError):
    code = "signature_missing"


class SignatureInvalid(StationAuthError):
    code = "signature_invalid"


class StationUnknown(StationAuthError):
    code = "station_unknown"


class StationSuspended(StationAuthError):
    code = "station_suspended"


class StationRevoked(StationAuthError):
    code = "station_revoked"


class RequestStale(StationAuthError):
    code = "request_stale"


class RequestReplayed(StationAuthError):
    code = "request_replayed"


class CounterFork(StationAuthError):
    code = "counter_fork"


class CounterRegressed(StationAuthError):
    code = "counter_regressed"


@dataclass(frozen=True)
class StationRecord:
    """What the verifier needs to know about a station."""

    station_id: StationId
    status: str  # active | suspended | revoked
    #: The station's request-signing (token) key; ``None`` until an identity is bound.
    public_key: ec.EllipticCurvePublicKey | None
    #: SHA-256 (hex) of the DER of its registered TLS client certificate, if pinned.
    tls_cert_fingerprint: str | None
    last_counter: int


class CounterVerdict(StrEnum):
    ACCEPTED = "accepted"
    REPLAYED = "replayed"
    FORK = "fork"
    REGRESSED = "regressed"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class StationDirectory(Protocol):
    def station(self, station_id: str) -> StationRecord | None: ...


class CounterLedger(Protocol):
    def record_request(
        self, station_id: StationId, counter: int, request_digest: str, now: datetime
    ) -> CounterVerdict:
        """Atomically: accept and record a fresh counter, or say why not.

        ``FORK`` and ``REGRESSED`` suspend the station, raise a critical alert and audit it
        in the same, committed transaction.
        """
        ...


class RefusalLog(Protocol):
    def record_refusal(
        self, code: str, *, station_id: str | None, detail: dict[str, Any], now: datetime
    ) -> None: ...


@dataclass(frozen=True)
class SignedRequest:
    """A request as received: nothing here has been checked yet."""

    method: str
    #: Absolute URL rebuilt from the raw request target (never a decoded path).
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: DER of the TLS peer certificate, when the client presented one.
    client_cert_der: bytes | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass(frozen=True)
class VerifiedSignature:
    station: StationRecord
    counter: int
    #: SHA-256 (hex) of the RFC 9421 signature base: one value per distinct signed request.
    request_digest: str


class _Message:
    """The minimal request interface ``http-message-signatures`` resolves components from."""

    def __init__(self, request: SignedRequest) -> None:
        self.method = request.method
        self.url = request.url
        self.headers = _HeaderLines(request.headers)


class _HeaderLines:
    def __init__(self, lines: tuple[tuple[str, str], ...]) -> None:
        self._lines = lines

    def items(self) -> Iterable[tuple[str, str]]:
        return self._lines


class _Verifier(HTTPMessageVerifier):
    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        """Time is checked by ``StationRequestVerifier`` against its own clock."""


class _KeyResolver(HTTPSignatureKeyResolver):
    """Looks the keyid up once and remembers what it found, to name the refusal precisely."""

    def __init__(self, directory: StationDirectory, tls_station: StationId | None) -> None:
        self._directory, self._tls_station = directory, tls_station
        self.key_id: str | None = None
        self.record: StationRecord | None = None
        self.mismatch = False
        #: A directory failure (database down): it must not pass for a bad signature.
        self.failure: BirthrightError | None = None

    def resolve_public_key(self, key_id: str) -> ec.EllipticCurvePublicKey | None:
        self.key_id = key_id
        if self._tls_station is not None and key_id != self._tls_station:
            self.mismatch = True
            return None
        try:
            check_station_id(key_id)
        except InputError:
            return None  # not a station id: no need to ask the directory
        try:
            self.record = self._directory.station(key_id)
        except BirthrightError as e:  # the library would turn it into InvalidSignature
            self.failure = e
            return None
        return None if self.record is None else self.record.public_key

    def resolve_private_key(self, key_id: str) -> None:
        raise ConfigError("the verifier holds no private keys")


class StationRequestVerifier:
    def __init__(
        self,
        *,
        station_ca: x509.Certificate,
        directory: StationDirectory,
        ledger: CounterLedger,
        refusals: RefusalLog,
        clock: Callable[[], datetime],
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        require_client_cert: bool = True,
    ) -> None:
        self._station_ca = station_ca
        self._directory = directory
        self._ledger = ledger
        self._refusals = refusals
        self._clock = clock
        self._max_skew = max_skew
        self._require_client_cert = require_client_cert
        #: Station certificates that verified (each connection presents one per request):
        #: DER -> (station id, not before, not after). A station's own status and its pinned
        #: certificate are still read from the directory on every request.
        self._verified_certs: dict[bytes, tuple[StationId, datetime, datetime]] = {}

    def authenticate(self, request: SignedRequest) -> StationId:
        """The calling station's id, or a ``TrustError``; every refusal is audited."""
        now = self._clock()
        named: list[str] = []
        try:
            tls_station = self._client_station(request, now)
            if tls_station is not None:
                named.append(tls_station)
            verified = self.verify_signature(request, tls_station=tls_station, now=now)
            named.append(verified.station.station_id)
            verdict = self._ledger.record_request(
                verified.station.station_id, verified.counter, verified.request_digest, now
            )
            _raise_for(verdict, verified)
            return verified.station.station_id
        except TrustError as e:
            detail = {"method": request.method, "path": request.path[:200], "reason": e.message}
            station = named[-1] if named else None
            self._refusals.record_refusal(e.code, station_id=station, detail=detail, now=now)
            raise

    def _client_station(self, request: SignedRequest, now: datetime) -> StationId | None:
        if request.client_cert_der is None:
            if self._require_client_cert:
                raise ClientCertRequired("a station must present its TLS client certificate")
            return None
        known = self._verified_certs.get(request.client_cert_der)
        if known is not None and known[1] <= now <= known[2]:
            return known[0]  # verified before against the same CA; still within its validity
        try:
            cert = x509.load_der_x509_certificate(request.client_cert_der)
        except ValueError as e:
            raise ClientCertRequired("the TLS client certificate cannot be parsed") from e
        station = verify_station_cert(cert, station_ca=self._station_ca, now=now)
        if len(self._verified_certs) >= _VERIFIED_CERTS_KEPT:
            self._verified_certs.clear()
        self._verified_certs[request.client_cert_der] = (
            station,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )
        return station

    def verify_signature(
        self, request: SignedRequest, *, tls_station: StationId | None, now: datetime
    ) -> VerifiedSignature:
        """Check the signature, coverage, body digest, status and time; no state changes."""
        names = {name.lower() for name, _ in request.headers}
        if "signature" not in names or "signature-input" not in names:
            raise SignatureMissing("the request carries no station signature")
        resolver = _KeyResolver(self._directory, tls_station)
        verifier = _Verifier(signature_algorithm=ALGORITHM, key_resolver=resolver)
        try:
            results = verifier.verify(
                _Message(request),
                max_age=None,
                require_components=SIGNED_COMPONENTS,
                body=request.body,
            )
        except (InvalidSignature, HTTPMessageSignaturesException) as e:
            if resolver.failure is not None:
                raise resolver.failure from e
            raise _resolution_error(resolver) or SignatureInvalid(
                f"the station signature does not verify: {str(e)[:200]}"
            ) from e
        if resolver.record is None or len(results) != 1:
            raise SignatureInvalid("expected exactly one station signature")
        result, record = results[0], resolver.record
        if record.tls_cert_fingerprint is not None and request.client_cert_der is not None:
            presented = hashlib.sha256(request.client_cert_der).hexdigest()
            if presented != record.tls_cert_fingerprint:
                raise ClientCertMismatch(
                    "this is not the TLS certificate registered for the station"
                )
        if record.status == "revoked":
            raise StationRevoked(f"station {record.station_id} is revoked")
        if record.status != "active":
            raise StationSuspended(f"station {record.station_id} is {record.status}")
        self._check_time(result, now)
        return VerifiedSignature(record, _counter(result), _base_digest(result))

    def _check_time(self, result: VerifyResult, now: datetime) -> None:
        params = result.parameters
        if params.get("alg") != ALGORITHM.algorithm_id:
            raise SignatureInvalid(f"the signature must name alg={ALGORITHM.algorithm_id}")
        created, expires = params.get("created"), params.get("expires")
        if not isinstance(created, int):
            raise SignatureInvalid("the signature carries no 'created' time")
        skew = abs(now.timestamp() - created)
        if skew > self._max_skew.total_seconds():
            raise RequestStale(f"the request was signed {skew:.0f} s away from the server's time")
        if isinstance(expires, int) and expires < now.timestamp():
            raise RequestStale("the signature has expired")


def _resolution_error(resolver: _KeyResolver) -> StationAuthError | None:
    if resolver.mismatch:
        return ClientCertMismatch("the TLS client certificate belongs to another station")
    if resolver.key_id is not None and (
        resolver.record is None or resolver.record.public_key is None
    ):
        return StationUnknown(f"no station {resolver.key_id[:64]!r} with a signing key")
    return None


def _counter(result: VerifyResult) -> int:
    text = result.covered_components.get(_COUNTER_COMPONENT, "")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_COUNTER:
        raise SignatureInvalid("Station-Counter must be a positive decimal integer")
    return int(text)


def _base_digest(result: VerifyResult) -> str:
    """SHA-256 of the signature base, rebuilt exactly as RFC 9421 §2.5 (and the library) do."""
    base = "\n".join(f"{k}: {v}" for k, v in result.covered_components.items())
    return hashlib.sha256(base.encode("ascii")).hexdigest()


def _raise_for(verdict: CounterVerdict, verified: VerifiedSignature) -> None:
    sid, n = verified.station.station_id, verified.counter
    errors: dict[CounterVerdict, StationAuthError] = {
        CounterVerdict.REPLAYED: RequestReplayed(f"request {n} of station {sid} was already seen"),
        CounterVerdict.FORK: CounterFork(
            f"station {sid} sent two different requests with counter {n}: suspended"
        ),
        CounterVerdict.REGRESSED: CounterRegressed(
            f"station {sid} went back to counter {n}: suspended"
        ),
        CounterVerdict.SUSPENDED: StationSuspended(f"station {sid} is suspended"),
        CounterVerdict.REVOKED: StationRevoked(f"station {sid} is revoked"),
        CounterVerdict.UNKNOWN: StationUnknown(f"station {sid} is not registered"),
    }
    if verdict is not CounterVerdict.ACCEPTED:
        raise errors[verdict]


# -- FastAPI edge ---------------------------------------------------------------------------


async def authenticated_station(request: Request) -> StationId:
    """FastAPI dependency: the authenticated station id (``app.state.station_auth``)."""
    verifier = getattr(request.app.state, "station_auth", None)
    if not isinstance(verifier, StationRequestVerifier):
        raise ConfigError("station authentication is not configured", code="station_auth_missing")
    scope = request.scope
    try:
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        signed = SignedRequest(
            method=scope["method"],
            url=request_url(scope),
            headers=headers,
            body=await request.body(),
            client_cert_der=peer_certificate_der(scope),
        )
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError("the request line or headers are malformed") from e
    return await run_in_threadpool(verifier.authenticate, signed)


#: ``def route(station: AuthenticatedStation, ...)``
AuthenticatedStation = Annotated[StationId, Depends(authenticated_station)]
