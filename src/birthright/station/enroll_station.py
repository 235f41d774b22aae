"""Give a station its identity: a key in its own token, certificates from the station CA.

In production the two halves run on two machines (the station makes its keys and CSRs; an
operator checks and signs them); in development both run here, for ``station register``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from birthright.ca.station import verify_station_cert
from birthright.db.operations import Operations
from birthright.db.stations import StationIdentities
from birthright.settings import Settings
from birthright.station.identity import create_station_identity, install_station_certificates
from birthright.workspace import read_secret_file, write_secret_file

PIN_FILE = "token-pin"


@dataclass(frozen=True)
class RegisteredStation:
    station_id: str
    station_dir: Path
    signing_cert: x509.Certificate


def register_station_identity(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    station_id: str,
    site: str,
    line: str,
    station_dir: Path,
    now: datetime,
    softhsm_dir: Path | None = None,
    pin: str | None = None,
) -> RegisteredStation:
    from birthright.ca.station import load_station_ca

    pin = pin or secrets.token_urlsafe(18)
    keys = create_station_identity(station_dir, station_id, pin=pin, softhsm_dir=softhsm_dir)
    write_secret_file(station_dir / PIN_FILE, pin)
    station_ca = load_station_ca(settings)
    signing = station_ca.issue_station_cert(
        keys.signing_csr, station_id=station_id, site=site, line=line, now=now
    )
    tls = station_ca.issue_station_cert(
        keys.tls_csr, station_id=station_id, site=site, line=line, now=now
    )
    for cert in (signing, tls):
        verify_station_cert(cert, station_ca=station_ca.ca_cert, now=now)
    install_station_certificates(
        station_dir, signing_cert=signing, tls_cert=tls, chain=station_ca.chain()
    )
    Operations(sessions).register_station(station_id, site=site, line=line, now=now)
    StationIdentities(sessions).bind(station_id, signing_cert=signing, tls_cert=tls, now=now)
    return RegisteredStation(station_id, station_dir, signing)


def station_pin(station_dir: Path) -> str:
    return read_secret_file(station_dir / PIN_FILE)
