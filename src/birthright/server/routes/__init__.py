"""One router per concern."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from birthright.server.backend import Backend
from birthright.server.schemas import ErrorBody


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(_backend)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the JSON error body at each status."""
    return {status: {"model": ErrorBody} for status in statuses}
