"""The factory CA's public certificates."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from birthright.server.pem import cert_pem
from birthright.server.routes import BackendDep

router = APIRouter(prefix="/v1/ca", tags=["ca"])


PEM_CHAIN = "application/pem-certificate-chain"


@router.get(
    "/chain.pem",
    response_class=Response,
    responses={200: {"content": {PEM_CHAIN: {"schema": {"type": "string"}}}}},
    summary="Issuing CA then root",
)
def chain(backend: BackendDep) -> Response:
    return Response("".join(cert_pem(c) for c in backend.chain), media_type=PEM_CHAIN)
