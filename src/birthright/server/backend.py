"""Wiring: settings in, ready use cases out. The one place that builds the object graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.keys import RESULT_KEY, load_or_create_key
from birthright.attest.result_signing import ResultSigner
from birthright.attest.service import AttestationService
from birthright.audit.signing import load_audit_public_key
from birthright.ca.authority import FactoryCa, load_factory_ca
from birthright.ca.operational import OperationalCa, load_or_create_operational_ca
from birthright.ca.se_vendors import load_se_vendor_roots
from birthright.ca.station import read_station_ca_cert
from birthright.db.attestation import SqlAttestationRecords, SqlNonceStore
from birthright.db.audit_sink import SqlAuditSink
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.entitlements import SqlEntitlementStore
from birthright.db.events import SqlEventStore
from birthright.db.firmware import SqlFirmwareReleases
from birthright.db.migrate import current_revision, head_revision
from birthright.db.observability import ping
from birthright.db.operations import Operations
from birthright.db.operators import SqlOperatorStore
from birthright.db.policy_hooks import SqlPolicyHooks
from birthright.db.products import SqlProductPolicies
from birthright.db.reconcile import ReconcileStore
from birthright.db.reports import SqlReportHistory
from birthright.db.repository import SqlEnrollmentStore
from birthright.db.revocation import SqlRevocationStore
from birthright.db.seal import SqlSealStore
from birthright.db.stations import SqlStationLedger
from birthright.deviceauth.service import DeviceAuthService
from birthright.enrollment.service import EnrollmentService
from birthright.entitlements.service import EntitlementService
from birthright.errors import ConfigError
from birthright.est.service import EstEnrollment
from birthright.events.model import DeliveryPolicy
from birthright.events.service import SubscriptionService
from birthright.events.signing import EVENT_KEY, EventSigner
from birthright.genuine import SeProofVerifiers
from birthright.genuine.pkcs11_vendor import Pkcs11VendorVerifier
from birthright.genuine.tpm import TpmProofVerifier
from birthright.observability.readiness import (
    Observability,
    Readiness,
    ca_key_probe,
    parse_networks,
    schema_probe,
)
from birthright.opcert.service import OperationalCertService
from birthright.operators.model import SessionPolicy
from birthright.operators.service import OperatorService
from birthright.policyhook.gate import PolicyGate
from birthright.policyhook.http import HttpHookTransport
from birthright.reconcile.service import ReportService, Schedule
from birthright.reconcile.signing import load_or_create_report_key, sign_report
from birthright.revocation.publish import IssuingCaSigner
from birthright.revocation.service import RevocationService
from birthright.seal.service import SealService
from birthright.server.est_auth import StationTlsAuthenticator
from birthright.server.limits import Limits
from birthright.server.station_auth import StationRequestVerifier
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
    #: None only when station authentication is switched off (isolated logic tests).
    station_auth: StationRequestVerifier | None
    revocation: RevocationService
    firmware: SqlFirmwareReleases
    result_signer: ResultSigner
    products: SqlProductPolicies
    reports: ReportService
    #: None when the daily report is not generated on a schedule (tests, by default).
    report_schedule: Schedule | None
    device_auth: DeviceAuthService
    entitlements: EntitlementService
    limits: Limits = field(default_factory=Limits)
    #: Issues LDevID-style operational certificates (ADR 0011); None in isolated logic tests.
    operational_ca: OperationalCa | None = None
    #: Who may scrape /metrics and what /readyz checks.
    observability: Observability = field(default_factory=Observability)
    #: EST (ADR 0014): served only when on; stations authenticate by TLS certificate.
    est_enabled: bool = False
    station_tls: StationTlsAuthenticator | None = None

    @property
    def est(self) -> EstEnrollment:
        """EST enrollment and re-enrollment over the enrollment service (ADR 0014)."""
        return EstEnrollment(
            enrollment=self.enrollment, store=SqlEnrollmentStore(self.sessions), clock=utc_now
        )

    @property
    def policy_hooks(self) -> SqlPolicyHooks:
        """Per-product enrollment policy hooks (ADR 0015)."""
        return SqlPolicyHooks(self.sessions)

    #: Operator endpoints and the console require a session or API token (ADR 0013); False
    #: only in isolated logic tests.
    operator_auth: bool = True
    session_policy: SessionPolicy = field(default_factory=SessionPolicy)
    #: Where the console's session cookie may travel: Secure over HTTPS.
    secure_cookies: bool = True
    #: Checks the audit chain's signed checkpoints in the console (None: no key yet).
    audit_public_key: ec.EllipticCurvePublicKey | None = None
    #: Signs webhook deliveries of fleet events (ADR 0012).
    event_signer: EventSigner | None = None
    #: How this process delivers the outbox; None when it does not dispatch.
    event_policy: DeliveryPolicy | None = None

    @property
    def event_store(self) -> SqlEventStore:
        return SqlEventStore(self.sessions)

    @property
    def events(self) -> SubscriptionService:
        """Webhook subscriptions of relying services (ADR 0012)."""
        return SubscriptionService(store=self.event_store, clock=utc_now)

    @property
    def manifests(self) -> ReconcileStore:
        """Shipment and chip-delivery imports (the reconciliation's inputs)."""
        return ReconcileStore(self.sessions)

    @property
    def operational(self) -> OperationalCertService:
        """Operational certificates for a fresh factory-identity proof (ADR 0011)."""
        if self.operational_ca is None:
            raise ConfigError("this backend has no operational CA", code="no_operational_ca")
        return OperationalCertService(
            ca=self.operational_ca,
            devices=SqlSealStore(self.sessions),
            nonces=SqlNonceStore(self.sessions),
            clock=utc_now,
        )

    @property
    def operators(self) -> OperatorService:
        """Operator accounts, console sessions and operator API tokens (ADR 0013)."""
        return OperatorService(
            store=SqlOperatorStore(self.sessions),
            audit=SqlAuditSink(self.sessions),
            clock=utc_now,
            policy=self.session_policy,
        )

    @property
    def sealing(self) -> SealService:
        """Sealing payloads to one device (ADR 0010)."""
        return SealService(store=SqlSealStore(self.sessions), clock=utc_now)

    def close(self) -> None:
        self.engine.dispose()


def build_backend(settings: Settings, *, ca: FactoryCa | None = None) -> Backend:
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    factory_ca = ca or load_factory_ca(settings)
    firmware = SqlFirmwareReleases(sessions)
    result_signer = ResultSigner(load_or_create_key(settings.ws, RESULT_KEY))
    device_auth = DeviceAuthService(
        nonces=SqlNonceStore(sessions),
        devices=SqlAttestationRecords(sessions),
        audit=SqlAuditSink(sessions),
        verify_chain=factory_ca.verify_chain,
        audience=settings.device_auth_audience,
        clock=utc_now,
        nonce_ttl=timedelta(seconds=settings.nonce_ttl_seconds),
    )
    return Backend(
        engine=engine,
        sessions=sessions,
        enrollment=EnrollmentService(
            store=SqlEnrollmentStore(sessions),
            issuer=factory_ca,
            clock=utc_now,
            se_proofs=se_proof_verifiers(settings),
            policy_gate=PolicyGate(
                hooks=SqlPolicyHooks(sessions), transport=HttpHookTransport(), clock=utc_now
            ),
        ),
        attestation=AttestationService(
            nonces=SqlNonceStore(sessions),
            records=SqlAttestationRecords(sessions),
            verify_chain=factory_ca.verify_chain,
            clock=utc_now,
            nonce_ttl=timedelta(seconds=settings.nonce_ttl_seconds),
            firmware=firmware,
            result_signer=result_signer,
        ),
        device_auth=device_auth,
        entitlements=EntitlementService(
            store=SqlEntitlementStore(sessions),
            authenticate=device_auth.authenticate,
            audit=SqlAuditSink(sessions),
            clock=utc_now,
        ),
        firmware=firmware,
        result_signer=result_signer,
        products=SqlProductPolicies(sessions),
        limits=Limits.from_rates(
            client_rate=settings.rate_limit_client_per_second,
            client_burst=settings.rate_limit_client_burst,
            station_rate=settings.rate_limit_station_per_second,
            station_burst=settings.rate_limit_station_burst,
        ),
        operations=Operations(sessions),
        chain=tuple(factory_ca.chain()),
        max_body_bytes=settings.max_body_bytes,
        station_auth=_station_auth(settings, sessions) if settings.station_auth else None,
        reports=build_report_service(settings, sessions),
        report_schedule=_schedule(settings),
        revocation=RevocationService(
            store=SqlRevocationStore(sessions),
            signer=IssuingCaSigner(
                issuer_cert=factory_ca.issuing_cert, issuer_key=factory_ca.issuing_key
            ),
            clock=utc_now,
        ),
        operational_ca=load_or_create_operational_ca(
            settings.ws, organization=settings.organization, now=utc_now()
        ),
        observability=Observability(
            metrics_allow=parse_networks(settings.metrics_allow),
            metrics_cache_seconds=settings.metrics_cache_seconds,
            readiness=Readiness(
                (
                    ("database", partial(ping, engine)),
                    ("schema", schema_probe(partial(current_revision, engine), head_revision())),
                    ("ca_key", ca_key_probe(factory_ca.issuing_cert, factory_ca.issuing_key)),
                )
            ),
        ),
        est_enabled=settings.est,
        station_tls=_station_tls(settings, sessions) if settings.est else None,
        operator_auth=settings.operator_auth,
        session_policy=SessionPolicy(
            idle=timedelta(minutes=settings.console_idle_minutes),
            absolute=timedelta(hours=settings.console_absolute_hours),
        ),
        secure_cookies=settings.tls,
        audit_public_key=load_audit_public_key(settings),
        event_signer=EventSigner(load_or_create_key(settings.ws, EVENT_KEY)),
        event_policy=_event_policy(settings),
    )


def _event_policy(settings: Settings) -> DeliveryPolicy | None:
    if not settings.event_dispatch:
        return None
    return DeliveryPolicy(
        max_attempts=settings.event_max_attempts,
        first_retry=timedelta(seconds=settings.event_first_retry_seconds),
        timeout=timedelta(seconds=settings.event_timeout_seconds),
        lease=timedelta(seconds=settings.event_lease_seconds),
        poll=timedelta(seconds=settings.event_poll_seconds),
    )


#: Workspace secret sealing TPM credential challenges (stateless across replicas).
TPM_CHALLENGE_SECRET = "tpm-challenge-key"  # noqa: S105 - a secret's name


def se_proof_verifiers(settings: Settings) -> SeProofVerifiers:
    """Every genuine-SE proof kind this backend verifies, with its trust anchors.
    A new kind (``tpm``, ...) is one more verifier in this list."""
    roots = load_se_vendor_roots(settings.ws)
    seal_key = settings.ws.secret(TPM_CHALLENGE_SECRET, create=True).encode()
    return SeProofVerifiers(
        [Pkcs11VendorVerifier(roots=roots), TpmProofVerifier(roots=roots, seal_key=seal_key)]
    )


def build_report_service(settings: Settings, sessions: sessionmaker[Session]) -> ReportService:
    return ReportService(
        figures=ReconcileStore(sessions).figures,
        history=SqlReportHistory(sessions),
        sign=partial(sign_report, load_or_create_report_key(settings)),
        clock=utc_now,
    )


def _schedule(settings: Settings) -> Schedule | None:
    if not settings.report_schedule:
        return None
    return Schedule(time.fromisoformat(settings.report_daily_at), settings.report_check_seconds)


def _station_auth(settings: Settings, sessions: sessionmaker[Session]) -> StationRequestVerifier:
    ledger = SqlStationLedger(sessions)
    return StationRequestVerifier(
        station_ca=read_station_ca_cert(settings.ws),
        directory=ledger,
        ledger=ledger,
        refusals=ledger,
        clock=utc_now,
        require_client_cert=settings.tls,
    )


def _station_tls(settings: Settings, sessions: sessionmaker[Session]) -> StationTlsAuthenticator:
    ledger = SqlStationLedger(sessions)
    return StationTlsAuthenticator(
        station_ca=read_station_ca_cert(settings.ws),
        directory=ledger,
        refusals=ledger,
        clock=utc_now,
    )
