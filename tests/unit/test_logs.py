"""Log lines carry the request they were written for: JSON and text formats."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from birthright.logs import (
    JsonFormatter,
    RequestContext,
    _TextContext,
    bind_station,
    enter_request,
    leave_request,
)


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("birthright.test", logging.INFO, __file__, 1, message, (), None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_name_the_request_and_its_station() -> None:
    token = enter_request(RequestContext("req-1"))
    try:
        bind_station("site1-line1-st1")
        line = json.loads(JsonFormatter().format(record("enrolled", route="/v1/enrollments")))
    finally:
        leave_request(token)
    assert line["request_id"] == "req-1"
    assert line["station_id"] == "site1-line1-st1"
    assert line["route"] == "/v1/enrollments"
    assert {"ts", "level", "logger", "message"} <= line.keys()
    outside = json.loads(JsonFormatter().format(record("idle")))
    assert "request_id" not in outside
    assert "station_id" not in outside


def test_binding_a_station_outside_a_request_does_nothing() -> None:
    bind_station("st-x")
    assert "station_id" not in json.loads(JsonFormatter().format(record("x")))


def test_exceptions_are_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


@pytest.mark.parametrize("station", [None, "st-2"], ids=["no-station", "station"])
def test_text_lines_get_the_same_context(station: str | None) -> None:
    token = enter_request(RequestContext("req-2", station_id=station))
    try:
        rec = record("hello", status=200)
        assert _TextContext().filter(rec)
    finally:
        leave_request(token)
    assert "request_id=req-2" in rec.context  # type: ignore[attr-defined]
    assert ("station_id=st-2" in rec.context) is (station is not None)  # type: ignore[attr-defined]
    assert "status=200" in rec.context  # type: ignore[attr-defined]
