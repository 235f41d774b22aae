"""Operator logs: one JSON object per line (or key=value text) to stderr and, when given, a file.

Every line written while a request is being served carries that request's id (and, once the
station has authenticated, its station id): the HTTP layer opens a :class:`RequestContext`
and everything below it, threads of the pool included, logs with it.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"

LogFormat = Literal["json", "text"]

#: ``extra=`` keys a log call may pass that the JSON formatter emits as fields.
FIELDS = ("route", "method", "status", "duration_ms", "code", "client")


@dataclass
class RequestContext:
    """What the logs know of the request in progress; filled in as the request goes."""

    request_id: str
    station_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_current: ContextVar[RequestContext | None] = ContextVar("birthright_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def enter_request(context: RequestContext) -> object:
    """Make ``context`` the current request's; returns the token for :func:`leave_request`."""
    return _current.set(context)


def leave_request(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def bind_station(station_id: str) -> None:
    """Name the authenticated station in the current request's log lines."""
    context = _current.get()
    if context is not None:
        context.station_id = station_id


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", "station_id", ...}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _current.get()
        if context is not None:
            line["request_id"] = context.request_id
            if context.station_id is not None:
                line["station_id"] = context.station_id
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            # The exception's type and message, and the traceback's text: never local values.
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _TextContext(logging.Filter):
    """Append ``request_id=`` (and ``station_id=``) to text lines inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        suffix = ""
        if context is not None:
            suffix = f" request_id={context.request_id}"
            if context.station_id is not None:
                suffix += f" station_id={context.station_id}"
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                suffix += f" {name}={value}"
        record.context = suffix
        return True


def configure_logging(
    level: str = "INFO", *, file: Path | None = None, fmt: LogFormat = "text"
) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter(FORMAT + "%(context)s")
        for handler in handlers:
            handler.addFilter(_TextContext())
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=handlers, force=True)
