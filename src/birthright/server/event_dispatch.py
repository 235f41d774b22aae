"""The outbox dispatcher as a background task of the service's lifespan (ADR 0012).

Every ``policy.poll`` it claims due deliveries and posts them signed over HTTP(S); a
receiver that fails gets exponential backoff, then the dead-letter state. Each replica runs
one; claims keep them from posting the same delivery at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import httpx
from sqlalchemy.exc import SQLAlchemyError

from birthright.errors import BirthrightError
from birthright.events.dispatch import Dispatcher, PostFailed
from birthright.events.model import DeliveryPolicy

log = logging.getLogger(__name__)


class HttpPoster:
    """Posts one delivery; anything but a 2xx answer is a failure (no redirects followed)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def __call__(
        self, url: str, headers: dict[str, str], body: bytes, timeout: timedelta
    ) -> None:
        try:
            r = await self._client.post(
                url, content=body, headers=headers, timeout=timeout.total_seconds()
            )
        except httpx.HTTPError as e:
            raise PostFailed(type(e).__name__) from e
        if not 200 <= r.status_code < 300:
            raise PostFailed(f"HTTP {r.status_code}")


class Wake:
    """Lets a request thread of this process wake the dispatcher at once after it committed
    an event (other replicas find it at their next poll)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self.event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self._loop, self.event = loop, event

    def __call__(self) -> None:
        if self._loop is not None and self.event is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.event.set)


async def run_dispatcher(
    dispatcher: Dispatcher, poll: float, stop: asyncio.Event, wake: asyncio.Event
) -> None:
    while not stop.is_set():
        wake.clear()
        busy = False
        try:
            busy = bool(await dispatcher.run_once())
        except BirthrightError as e:
            log.warning("event dispatch failed code=%s message=%s", e.code, e.message)
        except SQLAlchemyError as e:
            log.warning("event dispatch failed error=%s", type(e).__name__)
        if busy:
            continue  # more may be due: drain before sleeping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=poll)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the event dispatcher stopped", exc_info=task.exception())


class _Stop(asyncio.Event):
    """Stopping also wakes the loop."""

    def __init__(self, wake: asyncio.Event) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake.set()


def start(
    dispatcher: Dispatcher, policy: DeliveryPolicy, wake: Wake
) -> tuple[asyncio.Task[None], asyncio.Event]:
    woken = asyncio.Event()
    wake.bind(asyncio.get_running_loop(), woken)
    stop = _Stop(woken)
    task = asyncio.create_task(
        run_dispatcher(dispatcher, policy.poll.total_seconds(), stop, woken),
        name="event-dispatch",
    )
    task.add_done_callback(_report_crash)
    return task, stop
