"""Operator logs: key=value lines to stderr and, when given, a file."""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


def configure_logging(level: str = "INFO", *, file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file))
    logging.basicConfig(level=level.upper(), format=FORMAT, handlers=handlers, force=True)
