"""One router per concern."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from birthright.errors import TrustError
from birthright.logs import bind_station
from birthright.server.backend import Backend
from birthright.server.limits import Limits
from birthright.server.schemas import ErrorBody
from birthright.server.station_auth import authenticated_station
from birthright.types import StationId


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def _backend_dependency(request: Request) -> Backend:
    # async: FastAPI runs a plain ``def`` dependency in the thread pool, one more hand-off
    # per request for a lookup in app.state.
    return _backend(request)


BackendDep = Annotated[Backend, Depends(_backend_dependency)]


async def _calling_station(request: Request) -> StationId | None:
    """The authenticated station, or None when station authentication is switched off.

    The station's rate limit is charged here, on every station route: to the authenticated
    station (so nobody can spend another station's budget by naming it), or with
    authentication off to the station the body names."""
    limits: Limits = _backend(request).limits
    if request.app.state.station_auth is None:
        limits.check_station(await _claimed_station(request))
        return None
    station = await authenticated_station(request)
    bind_station(station)
    limits.check_station(station)
    return station


async def _claimed_station(request: Request) -> str:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return ""
    claimed = body.get("station_id") if isinstance(body, dict) else None
    return claimed if isinstance(claimed, str) else ""


CallingStation = Annotated[StationId | None, Depends(_calling_station)]


def station_of(calling: StationId | None, claimed: str) -> StationId:
    """The station a request acts for: the authenticated one, which must be the one it names."""
    if calling is None:
        return StationId(claimed)
    if calling != claimed:
        raise TrustError(
            f"this request is signed by station {calling} but names station {claimed}",
            code="station_mismatch",
        )
    return calling


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the JSON error body at each status."""
    return {status: {"model": ErrorBody} for status in statuses}
