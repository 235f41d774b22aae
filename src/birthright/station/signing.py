"""Station request signatures (RFC 9421) with a strictly increasing, durable request counter.

Every request a station sends carries ``Content-Digest`` (RFC 9530, sha-256), a
``Station-Counter`` and one signature labelled ``station`` over ``SIGNED_COMPONENTS`` with the
parameters ``created``, ``keyid`` (the station id) and ``alg="ecdsa-p256-sha256"``. The key is
the station's token key: ``http-message-signatures`` prepares the signature base, the token
signs it, and the raw r‖s goes back into the headers.

The counter is taken from ``CounterStore`` (file-backed, below an fsync'd ceiling) and held,
with an exclusive lock, until the response arrives: one station sends one signed request at a
time, so the backend sees its counters in order; a counter it has seen before from a different
request is a clone (``counter_fork``).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageSigner, algorithms

from birthright.errors import ConfigError, InputError

COUNTER_HEADER = "Station-Counter"
SIGNATURE_LABEL = "station"
ALGORITHM = algorithms.ECDSA_P256_SHA256
#: What every station signature covers (the verifier requires exactly these).
SIGNED_COMPONENTS = (
    "@method",
    "@authority",
    "@path",
    "@query",
    "content-digest",
    "station-counter",
)
#: Counters are stored as BIGINT.
MAX_COUNTER = 2**63 - 1


def utc_now() -> datetime:
    return datetime.now(UTC)


#: Counters made durable at once: one fsync'd write per this many requests.
COUNTER_BLOCK = 256
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


class CounterStore:
    """A strictly increasing counter; every value it hands out is above a durable ceiling.

    The file ``path`` holds the ceiling ``C`` (written and fsync'd): no value above it has
    ever been used. Values are handed out from a block: when the next value passes ``C``, the
    ceiling moves ``COUNTER_BLOCK`` ahead, durably, before the value is used. The last value
    used is kept in ``<file>.used`` with the ceiling it belongs to and the kernel's boot id,
    written without fsync: a process crash leaves it in the page cache, and after a power
    loss (a new boot id) or any doubt (damaged, another ceiling) the counter resumes at
    ``C + 1``. Skipped values are harmless (the backend wants strictly increasing, not
    consecutive); a value used twice would look like a clone. Without a boot id (not Linux)
    every value is made durable on its own.

    ``reserve()`` holds a thread lock and an exclusive ``flock`` on ``<file>.lock`` for as
    long as the caller uses the value, so two processes on one station directory cannot send
    counters out of order. A missing file starts at 0; a damaged one is an error, never a
    silent restart (the backend would take a restart for a clone).
    """

    def __init__(self, path: Path, *, boot_id: str | None = None) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._used_path = path.with_name(path.name + ".used")
        self._lock = threading.Lock()
        self._boot = _boot_id() if boot_id is None else boot_id

    def ceiling(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit() or int(text) > MAX_COUNTER:
            raise ConfigError(f"the counter file {self.path} is damaged", code="counter_damaged")
        return int(text)

    def current(self) -> int:
        """The last value handed out (or, when that is not known for sure, the ceiling)."""
        ceiling = self.ceiling()
        used = self._last_used(ceiling)
        return ceiling if used is None else used

    def _last_used(self, ceiling: int) -> int | None:
        if not self._boot:
            return None
        try:
            value, of_ceiling, boot = self._used_path.read_text().split()
        except (OSError, ValueError):
            return None
        if boot != self._boot or of_ceiling != str(ceiling) or not value.isdigit():
            return None
        return int(value) if int(value) <= ceiling else None

    @contextmanager
    def reserve(self) -> Iterator[int]:
        """The next counter value, below a durable ceiling; exclusive until the block ends."""
        with self._lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                ceiling = self.ceiling()
                used = self._last_used(ceiling)
                value = (ceiling if used is None else used) + 1
                if value > MAX_COUNTER:
                    raise ConfigError("the request counter is exhausted", code="counter_damaged")
                if value > ceiling:
                    block = COUNTER_BLOCK if self._boot else 1
                    ceiling = min(value + block - 1, MAX_COUNTER)
                    self._write(ceiling)
                if self._boot:
                    self._used_path.write_text(f"{value} {ceiling} {self._boot}\n")
                yield value
            finally:
                os.close(fd)  # releases the flock

    def _write(self, value: int) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{value}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class StationAuth(httpx.Auth):
    """``httpx`` authentication that counts and signs every request with the station key.

    Synchronous clients only (the counter lock is a thread lock held across the request).
    """

    requires_request_body = True

    def __init__(
        self,
        station_id: str,
        signer: ec.EllipticCurvePrivateKey,
        counter: CounterStore,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not isinstance(signer.curve, ec.SECP256R1):
            raise ConfigError("a station signing key must be EC P-256", code="station_key_type")
        self.station_id = station_id
        self._signer = signer
        self._counter = counter
        self._clock = clock
        self._http_signer = HTTPMessageSigner(signature_algorithm=ALGORITHM)

    def sign(self, request: httpx.Request, counter: int) -> None:
        """Add Content-Digest, Station-Counter and the signature headers to ``request``."""
        for name in ("content-digest", "signature", "signature-input"):
            if name in request.headers:
                raise InputError(f"the request already carries {name}", code="already_signed")
        request.headers[COUNTER_HEADER] = str(counter)
        prepared = self._http_signer.prepare(
            request,
            key_id=self.station_id,
            created=self._clock(),
            label=SIGNATURE_LABEL,
            covered_component_ids=SIGNED_COMPONENTS,
            body=request.content,
        )
        der = self._signer.sign(prepared.signature_base, ec.ECDSA(hashes.SHA256()))
        self._http_signer.apply(request, prepared, ALGORITHM.signature_from_der(der))

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        with self._counter.reserve() as counter:
            self.sign(request, counter)
            yield request  # the counter stays reserved until the response is back

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise ConfigError("StationAuth works with a synchronous httpx.Client only")
        yield request  # pragma: no cover - makes this an async generator
