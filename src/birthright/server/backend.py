"""Wiring: settings in, ready use cases out. The one place that builds the object graph."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.service import AttestationService
from birthright.ca.authority import FactoryCa, load_factory_ca
from birthright.db.attestation import SqlAttestationRecords, SqlNonceStore
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.operations import Operations
from birthright.db.repository import SqlEnrollmentStore
from birthright.enrollment.service import EnrollmentService
from birthright.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Backend:
    engine: Engine
    sessions: sessionmaker[Session]
    enrollment: EnrollmentService
    attestation: AttestationService
    operations: Operations
    chain: tuple[x509.Certificate, ...]
    max_body_bytes: int

    def close(self) -> None:
        self.engine.dispose()


def build_backend(settings: Settings, *, ca: FactoryCa | None = None) -> Backend:
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    factory_ca = ca or load_factory_ca(settings)
    return Backend(
        engine=engine,
        sessions=sessions,
        enrollment=EnrollmentService(
            store=SqlEnrollmentStore(sessions),
            issuer=factory_ca,
            clock=utc_now,
        ),
        attestation=AttestationService(
            nonces=SqlNonceStore(sessions),
            records=SqlAttestationRecords(sessions),
            verify_chain=factory_ca.verify_chain,
            clock=utc_now,
            nonce_ttl=timedelta(seconds=settings.nonce_ttl_seconds),
        ),
        operations=Operations(sessions),
        chain=tuple(factory_ca.chain()),
        max_body_bytes=settings.max_body_bytes,
    )
