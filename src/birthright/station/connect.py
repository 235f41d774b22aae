"""A backend client that speaks as one station: mutual TLS plus signed requests."""

from __future__ import annotations

from pathlib import Path

from birthright.station.client import BackendClient
from birthright.station.enroll_station import station_pin
from birthright.station.identity import (
    load_station_config,
    load_station_signer,
    station_ssl_context,
)
from birthright.station.signing import CounterStore, StationAuth


def station_client(station_dir: Path, server: str, *, pin: str | None = None) -> BackendClient:
    """``BackendClient`` over mTLS with the station's certificate, every request signed by the
    station's token key with the next value of its persistent counter."""
    config = load_station_config(station_dir)
    signer = load_station_signer(
        station_dir, config.station_id, pin=pin or station_pin(station_dir)
    )
    return BackendClient(
        server,
        verify=station_ssl_context(station_dir, config.ca_chain),
        auth=StationAuth(config.station_id, signer, CounterStore(config.counter_file)),
    )
