"""The daily report on a schedule: a background task of the service's lifespan.

Every ``check_seconds`` it asks the report service whether a scheduled report is due (the
service decides, and the history makes a second replica's check a no-op); the work runs in a
thread so the event loop keeps serving. A failure is logged and retried at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from birthright.errors import BirthrightError
from birthright.reconcile.service import ReportService, Schedule

log = logging.getLogger(__name__)


async def run_schedule(service: ReportService, schedule: Schedule, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(service.run_due, schedule)
        except BirthrightError as e:
            log.warning("scheduled report failed code=%s message=%s", e.code, e.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=schedule.check_seconds)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the report schedule stopped", exc_info=task.exception())


def start(service: ReportService, schedule: Schedule) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_schedule(service, schedule, stop), name="report-schedule")
    task.add_done_callback(_report_crash)
    return task, stop
