"""Fleet events for relying services: webhook subscriptions and the event-signing key.

The subscription endpoints are operator endpoints and, like the revocation ones, carry no
operator authentication yet (see ``routes/revocation.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from birthright.errors import ConfigError
from birthright.events.model import EVENT_TYPES, Subscription
from birthright.events.signing import SCHEME
from birthright.operators.roles import Permission
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import Strict

router = APIRouter(tags=["events"])
SUBSCRIPTION_ID = r"^sub_[0-9a-f]{16}$"


class SubscriptionBody(Strict):
    url: str = Field(max_length=2048, description="http:// or https:// URL that gets POSTs.")
    event_types: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=f"Of {', '.join(EVENT_TYPES)}."
    )
    description: str = Field(default="", max_length=200)


class SubscriptionResponse(BaseModel):
    subscription_id: str
    url: str
    event_types: list[str]
    description: str
    created_at: datetime


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionResponse]


class DeliveryResponse(BaseModel):
    delivery_id: int
    event_id: str
    event_type: str
    status: str = Field(description="pending, delivered or dead (attempts spent).")
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryResponse]


class SigningKeyResponse(BaseModel):
    algorithm: str = Field(description="es256: ECDSA P-256 with SHA-256, DER signatures.")
    key_id: str = Field(description="Sent in each delivery's webhook-key-id header.")
    public_key: str = Field(description="SubjectPublicKeyInfo, PEM.")
    signed_content: str
    event_types: list[str]


def _render(s: Subscription) -> SubscriptionResponse:
    return SubscriptionResponse(
        subscription_id=s.subscription_id,
        url=s.url,
        event_types=list(s.event_types),
        description=s.description,
        created_at=s.created_at,
    )


@router.post(
    "/v1/event-subscriptions",
    status_code=201,
    response_model=SubscriptionResponse,
    responses={**errors(400, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.EVENTS_MANAGE)],
    summary="Subscribe a webhook to fleet events (operator: events.manage)",
    description="`subscription_invalid` (400) for a URL that is not absolute http(s); "
    "`event_type_unknown` (400) for an event type we do not publish.",
)
def subscribe(backend: BackendDep, body: SubscriptionBody) -> SubscriptionResponse:
    made = backend.events.subscribe(body.url, body.event_types, description=body.description)
    return _render(made)


@router.get(
    "/v1/event-subscriptions",
    response_model=SubscriptionList,
    responses=OPERATOR_ERRORS,
    dependencies=[require(Permission.EVENTS_VIEW)],
)
def subscriptions(backend: BackendDep) -> SubscriptionList:
    return SubscriptionList(subscriptions=[_render(s) for s in backend.events.all()])


@router.delete(
    "/v1/event-subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses={**errors(404, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.EVENTS_MANAGE)],
    summary="Unsubscribe; undelivered deliveries are dropped (operator: events.manage)",
)
def unsubscribe(
    backend: BackendDep, subscription_id: str = Path(pattern=SUBSCRIPTION_ID)
) -> Response:
    backend.events.unsubscribe(subscription_id)
    return Response(status_code=204)


@router.get(
    "/v1/event-subscriptions/{subscription_id}/deliveries",
    response_model=DeliveryList,
    responses={**errors(404, 422), **OPERATOR_ERRORS},
    dependencies=[require(Permission.EVENTS_VIEW)],
    summary="Recent deliveries of one subscription, newest first (operator: events.view)",
)
def deliveries(
    backend: BackendDep,
    subscription_id: str = Path(pattern=SUBSCRIPTION_ID),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    found = backend.events.deliveries(subscription_id, limit=limit)
    return DeliveryList(deliveries=[DeliveryResponse(**vars(d)) for d in found])


@router.post(
    "/v1/event-subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Due again, from its first attempt."},
        **errors(404, 409, 422),
        **OPERATOR_ERRORS,
    },
    dependencies=[require(Permission.EVENTS_MANAGE)],
    summary="Try a dead-lettered delivery again (operator: events.manage)",
    description="`delivery_unknown` (404); `delivery_not_dead` (409) when it was delivered or "
    "is still being tried.",
)
def redeliver(
    backend: BackendDep,
    request: Request,
    subscription_id: str = Path(pattern=SUBSCRIPTION_ID),
    delivery_id: int = Path(ge=1, le=2**31 - 1),
) -> Response:
    backend.events.redeliver(subscription_id, delivery_id)
    wake = getattr(request.app.state, "event_wake", None)
    if wake is not None:
        wake()
    return Response(status_code=202)


@router.get(
    "/v1/event-signing-key",
    response_model=SigningKeyResponse,
    responses=errors(500),
    summary="The public key that verifies every webhook delivery (ADR 0012)",
)
def signing_key(backend: BackendDep) -> SigningKeyResponse:
    signer = backend.event_signer
    if signer is None:
        raise ConfigError("this backend signs no events", code="no_event_key")
    pem = signer.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return SigningKeyResponse(
        algorithm=SCHEME,
        key_id=signer.kid,
        public_key=pem.decode(),
        signed_content="{webhook-id}.{webhook-timestamp}.{body}",
        event_types=list(EVENT_TYPES),
    )
