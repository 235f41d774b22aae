"""Prometheus metrics: what the service counts, and the exposition a scraper reads.

Counters and histograms live in prometheus_client's process registry. Under
``birthright serve --workers N`` every worker writes them to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve`` before any worker starts) and ``/metrics``
adds the files of every worker up, so a scrape of any worker sees the whole replica.

Gauges of database state (quota used and remaining per open work order) are not stored in a
process: they are read from the database when scraped, by a cheap query cached a few seconds.

Every label is bounded: routes are templates (``/v1/devices/{serial}``, never a serial),
error codes and check ids are stable identifiers, statuses are enumerations.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from birthright.observability.model import QuotaUse

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Histogram(
    "birthright_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status class.",
    ["route", "method", "status_class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REFUSALS = Counter(
    "birthright_refusals_total",
    "Requests answered with a JSON error, by its stable code and HTTP status.",
    ["code", "status"],
)
ENROLLMENTS = Counter(
    "birthright_enrollments_total",
    "Enrollment answers: issued (a new certificate) or repeated (an idempotent retry).",
    ["outcome"],
)
ATTESTATIONS = Counter(
    "birthright_attestations_total",
    "Attestation verdicts, with the first failing check id (or ok) as the reason.",
    ["verdict", "reason"],
)
DEVICE_AUTH = Counter(
    "birthright_device_auth_total",
    "Device authentications: ok, or the refusal's code.",
    ["result"],
)
OCSP_ANSWERS = Counter(
    "birthright_ocsp_answers_total",
    "OCSP answers by certificate status (good, revoked, unknown) or unsuccessful status.",
    ["status"],
)
REVOCATIONS = Counter(
    "birthright_revocations_total",
    "Units revoked or put on hold, by how: one unit at a time or by a recall.",
    ["kind"],
)


_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@functools.lru_cache(maxsize=4096)
def request_timer(route: str, method: str, status: int) -> Any:
    """The histogram child of one (route, method, status class), looked up once."""
    return REQUESTS.labels(route, method, _STATUS_CLASSES[min(max(status // 100, 1), 5) - 1])


@functools.lru_cache(maxsize=64)
def ocsp_answer(status: str) -> Any:
    """The counter child of one OCSP answer status, looked up once."""
    return OCSP_ANSWERS.labels(status)


class QuotaCollector(Collector):
    """Quota used and remaining per open work order, read at scrape time, cached briefly."""

    def __init__(
        self,
        read: Callable[[], Sequence[QuotaUse]],
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, Sequence[QuotaUse]] | None = None

    def _orders(self) -> Sequence[QuotaUse]:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                try:
                    self._cached = (now, self._read())
                except Exception as e:  # a scrape without quotas beats a failed scrape
                    log.warning("quota metrics unavailable: %s", type(e).__name__)
                    return ()
            return self._cached[1]

    def collect(self) -> Iterable[Metric]:
        labels = ["work_order", "product"]
        used = GaugeMetricFamily(
            "birthright_work_order_quota_used", "Units minted on an open work order.", labels=labels
        )
        remaining = GaugeMetricFamily(
            "birthright_work_order_quota_remaining",
            "Units an open work order may still mint.",
            labels=labels,
        )
        for order in self._orders():
            key = [order.work_order_id, order.product]
            used.add_metric(key, order.minted)
            remaining.add_metric(key, max(0, order.quantity - order.minted))
        yield used
        yield remaining


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of this process's metrics (every worker's, in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for name in _own_collectors():
            registry.register(name)
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


def _own_collectors() -> list[Collector]:
    return [REQUESTS, REFUSALS, ENROLLMENTS, ATTESTATIONS, DEVICE_AUTH, OCSP_ANSWERS, REVOCATIONS]
