"""Who is calling an EST route: a station, proved by its TLS client certificate alone.

EST clients (RFC 7030) authenticate with their TLS certificate and cannot sign requests
(RFC 9421): ``StationTlsAuthenticator`` therefore checks what the TLS layer can prove — the
certificate chains to the station CA, names a registered station, is the certificate pinned
for that station, and the station is active — and audits every refusal. What it gives up
against the native routes (the counter that catches a cloned station) is why EST is off
unless a deployment turns it on (ADR 0014).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from birthright.ca.station import verify_station_cert
from birthright.errors import TrustError
from birthright.server.station_auth import (
    ClientCertMismatch,
    ClientCertRequired,
    RefusalLog,
    StationDirectory,
    StationRevoked,
    StationSuspended,
    StationUnknown,
)
from birthright.types import StationId


class StationTlsAuthenticator:
    def __init__(
        self,
        *,
        station_ca: x509.Certificate,
        directory: StationDirectory,
        refusals: RefusalLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._station_ca = station_ca
        self._directory = directory
        self._refusals = refusals
        self._clock = clock

    def authenticate(self, client_cert_der: bytes | None, *, path: str) -> StationId:
        """The station whose TLS certificate this is, or a ``TrustError`` (audited)."""
        now = self._clock()
        station: str | None = None
        try:
            if client_cert_der is None:
                raise ClientCertRequired("EST requires the station's TLS client certificate")
            try:
                cert = x509.load_der_x509_certificate(client_cert_der)
            except ValueError as e:
                raise ClientCertRequired("the TLS client certificate cannot be parsed") from e
            station = verify_station_cert(cert, station_ca=self._station_ca, now=now)
            record = self._directory.station(station)
            if record is None:
                raise StationUnknown(f"station {station} is not registered")
            pinned = record.tls_cert_fingerprint
            if pinned is None or hashlib.sha256(client_cert_der).hexdigest() != pinned:
                raise ClientCertMismatch(
                    "this is not the TLS certificate registered for the station"
                )
            if record.status == "revoked":
                raise StationRevoked(f"station {station} is revoked")
            if record.status != "active":
                raise StationSuspended(f"station {station} is {record.status}")
            return record.station_id
        except TrustError as e:
            detail = {"method": "POST", "path": path[:200], "reason": e.message, "via": "est"}
            self._refusals.record_refusal(e.code, station_id=station, detail=detail, now=now)
            raise
