"""Lay out a workspace's whole PKI in one step: factory CA, station CA, server TLS, audit key."""

from __future__ import annotations

from datetime import datetime

from birthright.audit.signing import load_or_create_audit_signer
from birthright.ca.authority import FactoryCa, init_workspace_ca
from birthright.ca.operational import load_or_create_operational_ca
from birthright.ca.station import init_station_ca, write_server_tls
from birthright.settings import Settings


def init_workspace_pki(settings: Settings, *, now: datetime, force: bool = False) -> FactoryCa:
    """Offline root with two intermediates (device issuing CA, station CA), the service's TLS
    certificate (issued by the station CA, so stations pin one anchor), the audit key, and the
    operational CA (its own anchor, apart from the factory hierarchy: ADR 0011)."""
    factory_ca = init_workspace_ca(settings, now=now, force=force)
    station_ca = init_station_ca(settings, now=now, force=force)
    write_server_tls(settings.ws, station_ca, now=now, hostnames=(settings.host, "localhost"))
    load_or_create_audit_signer(settings)
    load_or_create_operational_ca(settings.ws, organization=settings.organization, now=now)
    return factory_ca
