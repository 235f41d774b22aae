"""A reference webhook receiver: verifies each delivery, drops repeats by event id.

Small enough to copy into a relying service, real enough for the demo and the tests: a
``ThreadingHTTPServer`` on a loopback port that answers 204 to a verified delivery, 400 to
one that fails verification, and ``fail_next`` times 500 on purpose (to show retries).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from birthright.relying.webhooks import DeliveryRefused, verify_delivery

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Received:
    """One POST as it arrived; ``event`` is set once it verified."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    event: dict[str, Any] | None
    refused: str | None = None
    received_at: datetime | None = None  # wall clock, to compare with the event's time

    def delay(self) -> timedelta | None:
        """From the change (the event's ``occurred_at``) to its arrival here."""
        if self.event is None or self.received_at is None:
            return None
        return self.received_at - datetime.fromisoformat(self.event["occurred_at"])


class EventReceiver:
    def __init__(self, public_key: ec.EllipticCurvePublicKey, *, port: int = 0) -> None:
        self.public_key = public_key
        self.posts: list[Received] = []
        self.events: dict[str, dict[str, Any]] = {}  # event id -> event, first copy
        self.fail_next = 0
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def start(self) -> EventReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, event_type: str, serial: str | None = None, timeout: float = 10) -> Received:
        """The first verified delivery of ``event_type`` (naming ``serial``); TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for post in self.posts:
                    if (
                        post.event
                        and post.event["type"] == event_type
                        and (serial is None or _names(post.event, serial))
                    ):
                        return post
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {event_type} event arrived in {timeout} s")
                self._lock.wait(left)

    def _accept(self, headers: dict[str, str], body: bytes) -> int:
        at = time.monotonic()
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                self.posts.append(Received(headers, body, at, None, "failed on purpose"))
                self._lock.notify_all()
                return 500
        try:
            event = verify_delivery(headers, body, self.public_key, now=datetime.now(UTC))
        except DeliveryRefused as e:
            with self._lock:
                self.posts.append(Received(headers, body, at, None, e.code))
                self._lock.notify_all()
            return 400
        with self._lock:
            self.posts.append(Received(headers, body, at, event, None, datetime.now(UTC)))
            self.events.setdefault(event["id"], event)  # a repeat is acknowledged, not redone
            self._lock.notify_all()
        return 204

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    self.send_response(413)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                status = receiver._accept({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _names(event: dict[str, Any], serial: str) -> bool:
    data = event.get("data", {})
    return bool(
        data.get("serial") == serial
        or serial in data.get("serials", ())
        or any(e.get("serial") == serial for e in data.get("entitlements", ()))
    )
