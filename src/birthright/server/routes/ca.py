"""The factory CA's public certificates."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from birthright.server.pem import cert_pem
from birthright.server.routes import BackendDep

router = APIRouter(prefix="/v1/ca", tags=["ca"])


@router.get("/chain.pem", response_class=PlainTextResponse, summary="Issuing CA then root")
def chain(backend: BackendDep) -> PlainTextResponse:
    return PlainTextResponse(
        "".join(cert_pem(c) for c in backend.chain), media_type="application/pem-certificate-chain"
    )
