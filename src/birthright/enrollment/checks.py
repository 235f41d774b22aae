"""Checks every enrollment path makes: the station, the work order, the line's rate."""

from __future__ import annotations

from datetime import datetime, timedelta

from birthright.enrollment.model import Alert, Station, WorkOrder
from birthright.enrollment.ports import EnrollmentTx
from birthright.enrollment.refusals import StationRefused, WorkOrderRefused, WorkOrderUnknown
from birthright.types import StationId


def require_active_station(tx: EnrollmentTx, station_id: StationId) -> Station:
    station = tx.station(station_id)
    if station is None:
        raise StationRefused(f"station {station_id!r} is not registered")
    if station.status != "active":
        raise StationRefused(
            f"station {station_id!r} is {station.status}", code=f"station_{station.status}"
        )
    return station


def require_usable_work_order(
    tx: EnrollmentTx, work_order_id: str, station: Station, now: datetime
) -> WorkOrder:
    order = tx.work_order(work_order_id)
    if order is None:
        raise WorkOrderUnknown(f"work order {work_order_id!r} does not exist")
    if (order.site, order.line) != (station.site, station.line):
        raise WorkOrderRefused(
            f"work order {work_order_id} belongs to {order.site}/{order.line}, "
            f"not to this station's line {station.site}/{station.line}",
            code="work_order_wrong_line",
        )
    if order.status != "open":
        raise WorkOrderRefused(
            f"work order {work_order_id} is {order.status}",
            code=f"work_order_{order.status}",
        )
    if not order.valid_from <= now < order.valid_until:
        raise WorkOrderRefused(
            f"work order {work_order_id} is valid from {order.valid_from.isoformat()} "
            f"until {order.valid_until.isoformat()}",
            code="work_order_expired",
        )
    return order


def watch_rate(tx: EnrollmentTx, order: WorkOrder, now: datetime) -> None:
    """Flag, without refusing, a line that mints faster than its ceiling."""
    ceiling = order.rate_ceiling_per_minute
    if ceiling is None:
        return
    recent = tx.enrollments_since(order.site, order.line, now - timedelta(minutes=1))
    if recent == ceiling + 1:  # once per crossing, not once per unit above it
        tx.raise_alert(
            Alert(
                kind="line.rate_exceeded",
                severity="warning",
                message=f"line {order.site}/{order.line} minted {recent} units in the "
                f"last minute, above its ceiling of {ceiling}",
                work_order_id=order.work_order_id,
            ),
            now,
        )
