"""Demo setup: a free port, and the work orders the run provisions against."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from birthright.cli.common import console
from birthright.settings import Settings

WORK_ORDER_ID = "WO-DEMO-0001"
REWORK_ORDER_ID = "WO-DEMO-0002"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_work_orders(settings: Settings, devices: int) -> None:
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.operations import WorkOrders
    from birthright.enrollment.model import WorkOrderSpec

    engine = make_engine(settings.effective_database_url)
    orders = WorkOrders(make_sessionmaker(engine))
    now = datetime.now(UTC)

    def spec(wo: str, quantity: int, prefix: str, **extra: int) -> WorkOrderSpec:
        return WorkOrderSpec(
            work_order_id=wo,
            product=settings.product,
            site="site1",
            line="line1",
            quantity=quantity,
            serial_prefix=prefix,
            serial_first=1,
            serial_last=quantity * 2,
            valid_from=now,
            valid_until=now + timedelta(days=30),
            **extra,
        )

    main = orders.open(
        spec(WORK_ORDER_ID, devices, settings.serial_prefix, rate_ceiling_per_minute=600), now=now
    )
    # A second, small order on the same line: the red-team attempts run against it.
    orders.open(spec(REWORK_ORDER_ID, 2, settings.serial_prefix + "R"), now=now)
    engine.dispose()
    console.print(
        f"work order {main.work_order_id}: {main.quantity} × {main.product} "
        f"on {main.site}/{main.line}"
    )
