"""Request limits over real HTTP: per-address and per-station rate limits answer a JSON 429
with ``Retry-After``; oversized bodies, declared or streamed, are refused with a JSON 413
before the service holds more than the limit; refused requests write nothing."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text

from birthright.ca.authority import FactoryCa
from birthright.settings import Settings
from tests.conftest import ServedBackend, seed_line, serve_backend

serve = serve_backend


@pytest.fixture
def tight(settings: Settings, factory_ca: FactoryCa) -> Iterator[ServedBackend]:
    """A service whose limits a test can reach in a handful of requests."""
    yield from serve(
        settings,
        factory_ca,
        rate_limit_client_per_second=0.5,
        rate_limit_client_burst=8,
        rate_limit_station_per_second=0.5,
        rate_limit_station_burst=3,
    )


def reservations(served: ServedBackend) -> int:
    with served.backend.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM serial_reservations")).scalar_one())


def assert_rate_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "rate_limited"
    assert "rate limit" in body["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert body["retry_after"] == int(r.headers["Retry-After"])


def test_a_station_over_its_rate_gets_429_and_other_stations_go_on(tight: ServedBackend) -> None:
    seed_line(tight, station_id="st-a", work_order_id="WO-A")
    tight.backend.operations.register_station(
        "st-b", site="site1", line="line1", now=datetime.now(UTC)
    )
    with httpx.Client(base_url=tight.url, headers=tight.auth, timeout=10) as http:

        def reserve(station: str, chip: str) -> httpx.Response:
            body = {"station_id": station, "work_order_id": "WO-A", "chip_id": chip}
            return http.post("/v1/serials", json=body)

        assert [reserve("st-a", f"A{i}").status_code for i in range(3)] == [200] * 3
        before = reservations(tight)
        assert_rate_limited(reserve("st-a", "A3"))
        assert reservations(tight) == before, "a rate-limited request wrote a reservation"
        assert reserve("st-b", "B0").status_code == 200, "one station's flood stops another"


def test_an_address_over_its_rate_gets_429_but_health_checks_pass(tight: ServedBackend) -> None:
    with httpx.Client(base_url=tight.url, headers=tight.auth, timeout=10) as http:
        statuses = [http.get("/v1/products/policies").status_code for _ in range(8)]
        assert statuses == [200] * 8
        assert_rate_limited(http.get("/v1/products/policies"))
        assert http.get("/healthz").status_code == 200


def test_the_bucket_refills(settings: Settings, factory_ca: FactoryCa) -> None:
    for served in serve(
        settings, factory_ca, rate_limit_client_per_second=5.0, rate_limit_client_burst=2
    ):
        with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as http:
            # 5/s: a slow first answer on a busy machine (up to ~0.2 s) refills nothing
            assert [http.get("/v1/ca/chain.pem").status_code for _ in range(3)] == [200, 200, 429]
            time.sleep(0.5)
            assert http.get("/v1/ca/chain.pem").status_code == 200


def test_default_limits_let_a_busy_station_through(served: ServedBackend) -> None:
    """The defaults carry the benchmark's ~60 requests/s per station without a 429."""
    seed_line(served, station_id="st-busy", work_order_id="WO-BUSY", quantity=150)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as http:
        statuses = {
            http.post(
                "/v1/serials",
                json={"station_id": "st-busy", "work_order_id": "WO-BUSY", "chip_id": f"C{i}"},
            ).status_code
            for i in range(150)
        }
    assert statuses == {200}


def raw_post(url: str, path: str, head: dict[str, str], body: Iterator[bytes]) -> tuple[bytes, int]:
    """POST over a bare socket, watching for an early answer between chunks (as curl does):
    a server that refuses mid-upload answers before the client has sent everything."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        try:
            for chunk in body:
                if select.select([sock], [], [], 0)[0]:
                    break
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer, sent


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + b"{" * size + b"\r\n"
    yield b"0\r\n\r\n"


def status_and_code(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["code"]


@pytest.mark.parametrize("path", ["/v1/serials", "/v1/enrollments", "/ocsp", "/v1/revocations"])
def test_an_endless_streamed_body_is_cut_off_with_413(served: ServedBackend, path: str) -> None:
    """No Content-Length, 32 MiB streamed in chunks: refused at the limit with the JSON 413
    before the upload ends (the service never holds more than the limit), nothing written."""
    seed_line(served, station_id="st-big", work_order_id="WO-BIG")
    before = reservations(served)
    total = 32 * 1024 * 1024
    answer, sent = raw_post(served.url, path, {"Transfer-Encoding": "chunked"}, chunked(total))
    assert status_and_code(answer) == (413, "body_too_large"), answer[:300]
    assert sent < total // 4, f"the 413 came only after {sent} bytes"
    assert reservations(served) == before


def test_a_declared_oversized_body_is_refused_before_it_is_read(served: ServedBackend) -> None:
    answer, _ = raw_post(
        served.url, "/v1/enrollments", {"Content-Length": str(10**9)}, iter([b"{}"])
    )
    assert status_and_code(answer) == (413, "body_too_large"), answer[:300]
