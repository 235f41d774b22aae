"""Entitlements: claim with a device's proof, transfer by the owner, query."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from birthright.entitlements.model import Entitlement, Terms
from birthright.entitlements.service import ClaimRequest, Granted
from birthright.operators.roles import Permission
from birthright.server.device_schemas import (
    ClaimBody,
    EntitlementList,
    EntitlementResponse,
    GrantedResponse,
    TransferBody,
)
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.pem import b64decode
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import SERIAL

router = APIRouter(prefix="/v1/entitlements", tags=["entitlements"])
PLAN = r"^[A-Za-z0-9._-]{1,64}$"


def render(e: Entitlement, backend: BackendDep) -> EntitlementResponse:
    return EntitlementResponse(
        serial=e.serial,
        plan=e.terms.plan,
        kind=e.terms.kind,
        starts_on=e.terms.starts_on,
        ends_on=e.terms.ends_on,
        owner=e.owner,
        claimed_at=e.claimed_at,
        status=e.status(backend.entitlements.today().date()),
    )


def granted(g: Granted, backend: BackendDep) -> GrantedResponse:
    shown = render(g.entitlement, backend).model_dump()
    return GrantedResponse(**shown, transfer_secret=g.transfer_secret)


@router.post(
    "/claims",
    status_code=201,
    response_model=GrantedResponse,
    responses=errors(400, 401, 403, 409, 413, 422),
    summary="Claim a warranty or subscription for the unit that signs the token",
    description="The token must come from the unit itself (device-auth refusals apply); "
    "`entitlement_wrong_device` (403) when it was signed by another unit; "
    "`entitlement_exists` (409) when the serial already holds that plan.",
)
def claim(body: ClaimBody, backend: BackendDep) -> GrantedResponse:
    terms = Terms(plan=body.plan, kind=body.kind, starts_on=body.starts_on, ends_on=body.ends_on)
    made = backend.entitlements.claim(
        ClaimRequest(serial=body.serial, terms=terms, owner=body.owner),
        token=b64decode(body.token, field="token"),
        chain=[c.encode() for c in body.chain],
    )
    return granted(made, backend)


@router.post(
    "/{serial}/{plan}/transfer",
    response_model=GrantedResponse,
    responses={**errors(400, 403, 404, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.ENTITLEMENTS_MANAGE)],
    summary="Hand an entitlement to a new owner (by its current owner; audited)",
    description="Needs the current owner and its transfer secret; the new owner gets a new "
    "secret and the old one is spent. `entitlement_not_owner` (403) for a wrong owner or "
    "secret (a replayed one included); `device_revoked` (403) while the unit is revoked or on "
    "hold; `entitlement_unknown` (404).",
)
def transfer(
    body: TransferBody,
    backend: BackendDep,
    serial: str = Path(pattern=SERIAL),
    plan: str = Path(pattern=PLAN),
) -> GrantedResponse:
    moved = backend.entitlements.transfer(
        serial,
        plan,
        from_owner=body.from_owner,
        to_owner=body.to_owner,
        transfer_secret=body.transfer_secret,
    )
    return granted(moved, backend)


@router.get(
    "",
    response_model=EntitlementList,
    responses={**errors(400, 422), **OPERATOR_ERRORS},
    summary="Entitlements by serial, by owner, by plan (any combination, at least one)",
    dependencies=[require(Permission.ENTITLEMENTS_VIEW)],
)
def find(
    backend: BackendDep,
    serial: Annotated[str | None, Query(pattern=SERIAL)] = None,
    owner: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    plan: Annotated[str | None, Query(pattern=PLAN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EntitlementList:
    found = backend.entitlements.find(serial=serial, owner=owner, plan=plan, limit=limit)
    return EntitlementList(entitlements=[render(e, backend) for e in found])
