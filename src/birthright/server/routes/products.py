"""Per-product enrollment policy, read-only over HTTP.

Reading needs ``products.view`` (ADR 0013). Changing a policy stays on the server machine's
command line (``birthright product require-genuine``, ``product policy-hook set``): switching
genuine-SE enforcement or a policy hook off is not something a stolen console session should
be able to do.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Path

from birthright.enrollment.model import ProductPolicy
from birthright.errors import NotFoundError
from birthright.operators.roles import Permission
from birthright.server.operator_auth import OPERATOR_ERRORS, require
from birthright.server.routes import BackendDep, errors
from birthright.server.schemas import PolicyHookResponse, ProductPolicyResponse

router = APIRouter(
    prefix="/v1/products",
    tags=["products"],
    dependencies=[require(Permission.PRODUCTS_VIEW)],
    responses=OPERATOR_ERRORS,
)

PRODUCT = r"^[A-Za-z0-9._ -]{1,64}$"


def _body(policy: ProductPolicy) -> ProductPolicyResponse:
    return ProductPolicyResponse(
        product=policy.product,
        require_genuine_se=policy.require_genuine_se,
        updated_at=policy.updated_at,
    )


@router.get(
    "/policies",
    response_model=list[ProductPolicyResponse],
    summary="Every product with an explicit enrollment policy",
)
def policies(backend: BackendDep) -> list[ProductPolicyResponse]:
    return [_body(p) for p in backend.products.list()]


@router.get(
    "/{product}/policy",
    response_model=ProductPolicyResponse,
    responses=errors(422),
    summary="A product's enrollment policy (defaults when none was set)",
)
def policy(backend: BackendDep, product: str = Path(pattern=PRODUCT)) -> ProductPolicyResponse:
    return _body(backend.products.get(product))


@router.get(
    "/{product}/policy-hook",
    response_model=PolicyHookResponse,
    responses=errors(404, 422),
    summary="The product's enrollment policy hook (ADR 0015), if one is set",
)
def policy_hook(backend: BackendDep, product: str = Path(pattern=PRODUCT)) -> PolicyHookResponse:
    hook = backend.policy_hooks.hook_for(product)
    if hook is None:
        raise NotFoundError(f"product {product} has no policy hook", code="policy_hook_not_set")
    return PolicyHookResponse(
        product=hook.product,
        url=hook.url,
        timeout_ms=hook.timeout_ms,
        public_key=hook.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    )
