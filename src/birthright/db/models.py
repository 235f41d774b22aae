"""SQLAlchemy 2 models. Every cross-request invariant is a database constraint."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class StationRow(Base):
    __tablename__ = "stations"

    station_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # active | suspended | revoked
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: SHA-256 (hex) of the SubjectPublicKeyInfo of the station's non-exportable signing key.
    key_fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    #: The station certificate (DER) issued by the station CA for that key.
    cert_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: SHA-256 (hex) of the DER of the station's TLS client certificate.
    tls_cert_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Highest request counter accepted from this station (strictly increasing).
    last_counter: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StationRequestRow(Base):
    """Every signed request accepted from a station: replay and counter-fork evidence."""

    __tablename__ = "station_requests"

    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: SHA-256 (hex) of the signature base (method, path, body digest, created, counter).
    request_digest: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WorkOrderRow(Base):
    """What one line may mint: product, quantity, serial range, validity window."""

    __tablename__ = "work_orders"

    work_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    line: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(BigInteger)
    serial_prefix: Mapped[str] = mapped_column(String(32))
    serial_first: Mapped[int] = mapped_column(BigInteger)
    serial_last: Mapped[int] = mapped_column(BigInteger)
    #: Next serial number to hand out (allocation counter; atomic UPDATE ... RETURNING).
    next_serial: Mapped[int] = mapped_column(BigInteger)
    #: Identities issued so far; never exceeds ``quantity`` (atomic conditional UPDATE).
    minted: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # open | suspended | closed
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Units per minute above which the line's enrollments raise an anomaly alert.
    rate_ceiling_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(64))  # station.counter_fork, line.rate_exceeded …
    severity: Mapped[str] = mapped_column(String(16))  # critical | warning
    station_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    work_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReservationRow(Base):
    """A product serial handed to a station for one chip, before enrollment."""

    __tablename__ = "serial_reservations"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(128), unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    work_order_id: Mapped[str | None] = mapped_column(
        ForeignKey("work_orders.work_order_id"), nullable=True, index=True
    )
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceRow(Base):
    __tablename__ = "devices"
    #: The reconciliation reads a day of enrollments from this index alone (migration 0010).
    __table_args__ = (
        Index("ix_devices_reconcile", "enrolled_at", "work_order_id", "serial", "chip_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    chip_id: Mapped[str] = mapped_column(String(128), unique=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    cert_serial: Mapped[str] = mapped_column(String(64), unique=True)
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    product: Mapped[str] = mapped_column(String(64))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    work_order_id: Mapped[str | None] = mapped_column(
        ForeignKey("work_orders.work_order_id"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: How the key was proven to live in a genuine SE ("pkcs11-vendor", "tpm"), or null.
    se_proof: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attestation_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class NonceRow(Base):
    __tablename__ = "nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AttestationRow(Base):
    __tablename__ = "attestations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    verdict: Mapped[str] = mapped_column(String(16))
    findings: Mapped[str] = mapped_column(Text)


class AuditHeadRow(Base):
    """The single row that serialises appends to the hash chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    station_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signature by the backend's audit key over the chain head at ``seq``."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class RevocationRow(Base):
    """One revoked (or held) device certificate; the CRL lists the rows not released."""

    __tablename__ = "revocations"

    cert_serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: RFC 5280 reason name: keyCompromise, certificateHold, cessationOfOperation …
    reason: Mapped[str] = mapped_column(String(32))
    recall_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    #: Set when a certificateHold is lifted; the certificate leaves the CRL.
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RecallRow(Base):
    """A previewed targeted recall: the selection and a digest of exactly what it matched."""

    __tablename__ = "recalls"

    recall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: SHA-256 (hex) of the preview token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    selection: Mapped[str] = mapped_column(Text)  # canonical JSON
    reason: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(BigInteger)
    #: SHA-256 (hex) over the sorted certificate serials the preview matched.
    matched_digest: Mapped[str] = mapped_column(String(64))
    #: Highest devices.id the preview saw: later enrollments are outside the recall.
    device_id_cutoff: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CrlStateRow(Base):
    """The single row numbering CRLs and caching the latest one."""

    __tablename__ = "crl_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crl_number: Mapped[int] = mapped_column(BigInteger)
    #: True when revocations changed since the cached CRL was signed.
    dirty: Mapped[bool] = mapped_column(Boolean)
    last_generated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    next_update: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    crl_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class FirmwareReleaseRow(Base):
    """A signed firmware release on its product's allow-list (or blocked from it)."""

    __tablename__ = "firmware_releases"

    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: SHA-256 of the image, as signed in the manifest.
    measurement: Mapped[bytes] = mapped_column(LargeBinary)
    security_version: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # allowed | blocked
    #: The exact signed manifest bytes and the release key's DER signature over them.
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    block_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class DeviceContactRow(Base):
    """First contact: the first attestation a unit passed, and its latest one."""

    __tablename__ = "device_contacts"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_contact_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShipmentRow(Base):
    """One shipped unit from a manifest; re-importing the same row adds nothing."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("serial", "ship_date", "carton", name="uq_shipments_unit"),
        Index("ix_shipments_day", "ship_date", "work_order_id", "serial"),
        Index("ix_shipments_by_serial", "serial", "ship_date", "work_order_id"),
        Index("ix_shipments_order_serial", "work_order_id", "serial"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64))
    work_order_id: Mapped[str] = mapped_column(ForeignKey("work_orders.work_order_id"))
    ship_date: Mapped[date] = mapped_column(Date)
    carton: Mapped[str] = mapped_column(String(64))
    pallet: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(String(128))
    #: SHA-256 (hex) of the manifest file the row came from, and its line there.
    source_sha256: Mapped[str] = mapped_column(String(64))
    source_line: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChipDeliveryRow(Base):
    """A secure-element chip id a vendor delivered; an enrolled chip not here is foreign."""

    __tablename__ = "chip_deliveries"

    chip_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(64))
    delivered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source_sha256: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceFirmwareRow(Base):
    """The firmware a unit last reported in an attestation whose signature and chain held."""

    __tablename__ = "device_firmware"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), index=True)
    measurement: Mapped[bytes] = mapped_column(LargeBinary)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The highest security version this unit passed attestation with: the rollback floor.
    security_version_high: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ProductPolicyRow(Base):
    """Per-product enrollment policy set by an operator."""

    __tablename__ = "product_policies"

    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Refuse enrollments whose identity key is not proven to live in a genuine SE.
    require_genuine_se: Mapped[bool] = mapped_column(Boolean, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PolicyHookRow(Base):
    """A product's enrollment policy hook (ADR 0015): asked before every issuance."""

    __tablename__ = "product_policy_hooks"

    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: The hook's public key (SubjectPublicKeyInfo PEM) verifying its signed answers.
    public_key_pem: Mapped[str] = mapped_column(Text)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportRow(Base):
    """One generated, signed report: the exact bytes served and their detached signature."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_period_format", "period", "format", "generated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(16))  # "2026-11-26" or "all-time"
    format: Mapped[str] = mapped_column(String(8))  # json | csv | html | pdf
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | cli | demo
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class EntitlementRow(Base):
    """A warranty or subscription bound to one serial; one per (serial, plan)."""

    __tablename__ = "entitlements"
    __table_args__ = (
        UniqueConstraint("serial", "plan", name="uq_entitlements_serial_plan"),
        Index("ix_entitlements_owner", "owner", "plan"),
        Index("ix_entitlements_plan", "plan"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), ForeignKey("devices.serial"))
    plan: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    owner: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: SHA-256 (hex) of the owner's one-time transfer secret; rotated by each transfer.
    transfer_secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class KeyAgreementKeyRow(Base):
    """A device's key-agreement key (DER SPKI), signed for by its identity key (ADR 0010)."""

    __tablename__ = "key_agreement_keys"

    serial: Mapped[str] = mapped_column(String(64), ForeignKey("devices.serial"), primary_key=True)
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorRow(Base):
    """A console / operator-API account (ADR 0013): only an Argon2id hash of its password."""

    __tablename__ = "operators"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)
    line: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorSessionRow(Base):
    """A console session, keyed by the SHA-256 of its random id (the id itself is never kept)."""

    __tablename__ = "operator_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(32), ForeignKey("operators.name"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperatorTokenRow(Base):
    """An operator API token for scripts, keyed by its SHA-256."""

    __tablename__ = "operator_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(32), ForeignKey("operators.name"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventSubscriptionRow(Base):
    """A relying service's webhook: where to post which event types (ADR 0012)."""

    __tablename__ = "event_subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: Comma-separated event types.
    event_types: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    """The outbox: one fact, written in the transaction of the change it reports."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The JSON body every delivery of this event sends, byte for byte.
    payload: Mapped[str] = mapped_column(Text)


class EventDeliveryRow(Base):
    """One event owed to one subscription: pending, delivered or dead (attempts spent)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "status", "next_attempt_at"),
        Index("ix_event_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), ForeignKey("events.event_id"))
    subscription_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("event_subscriptions.subscription_id")
    )
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


def table_of(model: type[Base]) -> Table:
    """A mapped class's ``Table``, for Core statements on the hot paths (ADR 0018)."""
    return cast(Table, model.__table__)
