"""`birthright revocation`, `birthright recall` and `birthright crl`: revoke units, publish.

These act on the workspace's database directly, as an operator on the backend host would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rich.table import Table

from birthright.ca.authority import load_factory_ca
from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.revocation import SqlRevocationStore
from birthright.errors import ConfigError, InputError
from birthright.revocation.model import CertStatus, Reason, RevokedEntry, Selection
from birthright.revocation.publish import IssuingCaSigner
from birthright.revocation.service import RevocationService

revocation_app = typer.Typer(help="Revoke, hold and release single units.", no_args_is_help=True)
recall_app = typer.Typer(
    help="Targeted recall: preview a selection, then execute exactly it.", no_args_is_help=True
)

REASON_HELP = "RFC 5280 reason: " + ", ".join(r.value for r in Reason) + "."


class _NoSigner:
    """Stands in for the CA where a command never signs (revoke, recall)."""

    def sign_crl(
        self, revocations: Iterable[RevokedEntry], number: int, this: datetime, nxt: datetime
    ) -> bytes:
        raise ConfigError("this command does not sign CRLs")

    def answer_ocsp(
        self, request_der: bytes, status_of: Callable[[int], CertStatus], now: datetime
    ) -> bytes:
        raise ConfigError("this command does not answer OCSP")


def _service(workspace: Path, *, with_ca: bool = False) -> RevocationService:
    settings = settings_for(workspace)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    if not with_ca:
        return RevocationService(
            store=SqlRevocationStore(sessions), signer=_NoSigner(), clock=lambda: datetime.now(UTC)
        )
    ca = load_factory_ca(settings)
    signer = IssuingCaSigner(issuer_cert=ca.issuing_cert, issuer_key=ca.issuing_key)
    return RevocationService(
        store=SqlRevocationStore(sessions), signer=signer, clock=lambda: datetime.now(UTC)
    )


@revocation_app.command("revoke")
def revoke(
    serial: Annotated[str, typer.Argument(help="Product serial of the unit.")],
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "keyCompromise",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Revoke one unit (certificateHold puts it on hold, which can be released)."""
    r = _service(workspace).revoke(serial, Reason.parse(reason))
    console.print(f"{r.serial} {r.reason.device_status} ({r.reason.value}) cert {r.cert_serial}")


@revocation_app.command("release")
def release(
    serial: Annotated[str, typer.Argument(help="Product serial of a unit on hold.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Lift a certificateHold. A final revocation cannot be lifted."""
    device = _service(workspace).release(serial)
    console.print(f"{device.serial} active again")


@revocation_app.command("status")
def status(
    serial: Annotated[str, typer.Argument(help="Product serial.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Show whether a unit is active, on hold or revoked."""
    device, revocation = _service(workspace).status(serial)
    detail = ""
    if revocation is not None:
        detail = f" ({revocation.reason.value} at {revocation.revoked_at:%Y-%m-%d %H:%M:%S}Z)"
    console.print(f"{device.serial} {device.status}{detail}")


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"{value!r} is not an ISO 8601 time", code="bad_selection") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _range(value: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    first, sep, last = value.partition("..")
    if not sep or not first or not last:
        raise InputError("--serial-range takes FIRST..LAST", code="bad_selection")
    return first, last


@recall_app.command("preview")
def preview(
    product: Annotated[str | None, typer.Option(help="Product model.")] = None,
    work_order: Annotated[str | None, typer.Option(help="Work order id.")] = None,
    site: Annotated[str | None, typer.Option(help="Factory site.")] = None,
    line: Annotated[str | None, typer.Option(help="Production line.")] = None,
    station: Annotated[str | None, typer.Option(help="Provisioning station id.")] = None,
    serial: Annotated[list[str] | None, typer.Option(help="A serial (repeatable).")] = None,
    serial_range: Annotated[str | None, typer.Option(help="FIRST..LAST (inclusive).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Enrolled at or after (ISO 8601, UTC if no zone).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Enrolled before (ISO 8601).")] = None,
    firmware: Annotated[
        list[str] | None,
        typer.Option(help="Firmware version the unit last proved it runs (repeatable)."),
    ] = None,
    all_units: Annotated[bool, typer.Option("--all", help="Select every unit.")] = False,
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "keyCompromise",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Count and sample the active units a selection matches; prints the token to execute."""
    first, last = _range(serial_range)
    selection = Selection(
        product=product,
        work_order_id=work_order,
        site=site,
        line=line,
        station_id=station,
        serials=tuple(serial or ()),
        serial_first=first,
        serial_last=last,
        enrolled_since=_time(since),
        enrolled_until=_time(until),
        firmware_versions=tuple(firmware or ()),
        all=all_units,
    )
    p = _service(workspace).preview(selection, Reason.parse(reason))
    table = Table("recall", "units", "reason", "sample", "expires")
    table.add_row(
        p.recall_id, str(p.count), p.reason.value, ", ".join(p.sample), f"{p.expires_at:%H:%M}Z"
    )
    console.print(table)
    console.print(f"execute with: birthright recall execute {p.token}")


@recall_app.command("execute")
def execute(
    token: Annotated[str, typer.Argument(help="The token `recall preview` printed.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Revoke exactly the previewed units, in one transaction."""
    result = _service(workspace).execute(token)
    console.print(f"recall {result.recall_id}: {result.revoked} units {result.reason.value}")


def crl(
    out: Annotated[Path, typer.Option(help="Where to write the CRL.")],
    pem: Annotated[bool, typer.Option(help="Write PEM instead of DER.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Write the current CRL of the issuing CA (signing a new one if revocations changed)."""
    published = _service(workspace, with_ca=True).crl()
    data = published.der
    if pem:
        data = x509.load_der_x509_crl(data).public_bytes(Encoding.PEM)
    out.write_bytes(data)
    console.print(f"CRL number {published.number} written to {out}")
