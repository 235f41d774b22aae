"""SQLAlchemy implementation of the firmware allow-list port, plus publish and block."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.firmware import FirmwareRelease, ReleaseStatus, SignedManifest
from birthright.audit.events import AuditEvent
from birthright.db.models import FirmwareReleaseRow, table_of
from birthright.db.repository import _utc, append_audit, unit_of_work
from birthright.errors import ConflictError, NotFoundError


class SqlFirmwareReleases:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def has_policy(self, product: str) -> bool:
        with self._sessions() as s:
            found = s.execute(
                select(FirmwareReleaseRow.version)
                .where(FirmwareReleaseRow.product == product)
                .limit(1)
            ).first()
            return found is not None

    def release(self, product: str, version: str) -> FirmwareRelease | None:
        with self._sessions() as s:
            row = s.get(FirmwareReleaseRow, (product, version))
            return _release(row) if row else None

    def releases(self, product: str | None = None) -> list[FirmwareRelease]:
        query = select(FirmwareReleaseRow).order_by(
            FirmwareReleaseRow.product, FirmwareReleaseRow.published_at
        )
        if product is not None:
            query = query.where(FirmwareReleaseRow.product == product)
        with self._sessions() as s:
            return [_release(r) for r in s.execute(query).scalars()]

    def publish(self, signed: SignedManifest, now: datetime) -> tuple[FirmwareRelease, bool]:
        """Add a verified release to its product's allow-list; (release, created).

        Publishing the same signed manifest again changes nothing; another manifest for a
        version already published is refused, so a version always names one image.
        """
        m = signed.manifest
        with unit_of_work(self._sessions) as s:
            row = s.get(FirmwareReleaseRow, (m.product, m.version), with_for_update=True)
            if row is not None:
                if row.manifest != signed.signed_bytes:
                    raise ConflictError(
                        f"{m.product} {m.version} is already published with another image",
                        code="release_exists",
                    )
                return _release(row), False
            row = FirmwareReleaseRow(
                product=m.product,
                version=m.version,
                measurement=bytes.fromhex(m.image_sha256),
                security_version=m.security_version,
                status="allowed",
                manifest=signed.signed_bytes,
                signature=signed.signature,
                published_at=now,
            )
            s.add(row)
            append_audit(
                s,
                AuditEvent(
                    event="firmware.publish",
                    outcome="ok",
                    detail={
                        "product": m.product,
                        "version": m.version,
                        "image_sha256": m.image_sha256,
                        "security_version": m.security_version,
                    },
                ),
                now,
            )
            s.flush()
            return _release(row), True

    def block(self, product: str, version: str, *, reason: str, now: datetime) -> FirmwareRelease:
        with unit_of_work(self._sessions) as s:
            row = s.get(FirmwareReleaseRow, (product, version), with_for_update=True)
            if row is None:
                raise NotFoundError(
                    f"{product} {version} is not a published release", code="release_unknown"
                )
            if row.status != "blocked":
                row.status = "blocked"
                row.blocked_at = now
                row.block_reason = reason
                append_audit(
                    s,
                    AuditEvent(
                        event="firmware.block",
                        outcome="ok",
                        detail={"product": product, "version": version, "reason": reason},
                    ),
                    now,
                )
            s.flush()
            return _release(row)


_RELEASES = table_of(FirmwareReleaseRow)
#: A release's columns labelled ``release_*``, to read it in one statement beside other rows;
#: ``labelled_release`` takes them back out of the row.
RELEASE_COLUMNS = tuple(
    _RELEASES.c[name].label(f"release_{name}")
    for name in (
        "product",
        "version",
        "measurement",
        "security_version",
        "status",
        "published_at",
        "block_reason",
    )
)


def labelled_release(row: Any) -> FirmwareRelease | None:
    """The release in a row read with ``RELEASE_COLUMNS`` (None when an outer join found none)."""
    if row.release_product is None:
        return None
    return _release_of(
        row.release_product,
        row.release_version,
        row.release_measurement,
        row.release_security_version,
        row.release_status,
        row.release_published_at,
        row.release_block_reason,
    )


def _release(row: FirmwareReleaseRow) -> FirmwareRelease:
    return _release_of(
        row.product,
        row.version,
        row.measurement,
        row.security_version,
        row.status,
        row.published_at,
        row.block_reason,
    )


def _release_of(
    product: str,
    version: str,
    measurement: bytes,
    security_version: int,
    status: str,
    published_at: datetime,
    reason: str | None,
) -> FirmwareRelease:
    state: ReleaseStatus = "blocked" if status == "blocked" else "allowed"
    return FirmwareRelease(
        product=product,
        version=version,
        measurement=measurement,
        security_version=security_version,
        status=state,
        published_at=_utc(published_at),
        reason=reason,
    )
