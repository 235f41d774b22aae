"""Schemathesis against the service's own OpenAPI, over real HTTP on 127.0.0.1.

The bar: no 5xx, every response conforms to the schema (status, content type, body), every
error is ``{"code", "message"}``, and a refused request writes nothing but its audit record.
Bounded in CI; ``BIRTHRIGHT_FUZZ_EXAMPLES=1000`` (``make fuzz``) runs a longer campaign.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import Engine, inspect, text

from tests.conftest import ServedBackend, seed_line

EXAMPLES = int(os.environ.get("BIRTHRIGHT_FUZZ_EXAMPLES", "25"))
STATEFUL_STEPS = int(os.environ.get("BIRTHRIGHT_FUZZ_STEPS", str(max(EXAMPLES // 2, 10))))
#: What a refused request may still write: its audit record and any security alert.
AUDIT_TABLES = frozenset({"audit_events", "audit_head", "alerts", "alembic_version"})
#: A schema-valid body may still be refused by the domain (a CSR is "any string" to JSON
#: Schema, a bad signature is a 400): that check cannot hold for this API by design.
EXCLUDED: list[CheckFunction] = [positive_data_acceptance]


@schemathesis.serializer("application/ocsp-request")
def _ocsp_request(_ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """OCSP requests are DER bytes; whatever was generated goes on the wire as bytes."""
    return value if isinstance(value, bytes) else repr(value).encode()


@schemathesis.serializer("application/pkcs10")
def _pkcs10(_ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """EST bodies are base64 text; whatever was generated goes on the wire as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


def table_counts(engine: Engine) -> dict[str, int]:
    tables = sorted(set(inspect(engine).get_table_names()) - AUDIT_TABLES)
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one())  # noqa: S608
            for t in tables
        }


@pytest.fixture
def fuzzed(served: ServedBackend) -> ServedBackend:
    seed_line(served, station_id="st-fuzz", work_order_id="WO-FUZZ", quantity=50)
    return served


@pytest.fixture
def api_schema(fuzzed: ServedBackend) -> OpenApiSchema:
    # 413 (body over the limit) is a correct refusal of invalid data too.
    config = SchemathesisConfig.from_str(
        "[checks.negative_data_rejection]\n"
        "expected-statuses = [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]\n"
    )
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json", config=config)


def check_error_body(case: Case[Any], status: int, body: object) -> None:
    if status >= 400:
        assert isinstance(body, dict), f"{case.method} {case.path}: error body {body!r}"
        assert isinstance(body.get("code"), str), body
        assert isinstance(body.get("message"), str), body


def fuzz_settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=not os.environ.get("BIRTHRIGHT_FUZZ_RANDOM"),
        database=None,
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_within_its_contract(
    api_schema: OpenApiSchema, fuzzed: ServedBackend, mode: GenerationMode
) -> None:
    engine = fuzzed.backend.engine
    operations = sum(1 for _ in api_schema.get_all_operations())
    calls: Counter[str] = Counter()

    @fuzz_settings(EXAMPLES * operations)
    @hypothesis.given(case=api_schema.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        before = table_counts(engine)
        response = case.call_and_validate(timeout=30, excluded_checks=EXCLUDED, headers=fuzzed.auth)
        calls[f"{case.method} {case.path} {response.status_code}"] += 1
        is_json = response.headers.get("content-type", [""])[0].startswith("application/json")
        check_error_body(case, response.status_code, response.json() if is_json else None)
        if response.status_code >= 400:
            assert table_counts(engine) == before, f"{case.method} {case.path} refused but wrote"

    run()
    print(f"fuzz {mode}: {sum(calls.values())} requests over {operations} operations")
    for line, n in sorted(calls.items()):
        print(f"  {n:5d}  {line}")


def test_stateful_sequences_hold_the_contract(
    api_schema: OpenApiSchema, fuzzed: ServedBackend
) -> None:
    """Sequences of calls (links inferred by schemathesis from the schema), each step checked
    against the contract, refused steps checked for partial writes."""
    engine = fuzzed.backend.engine
    calls: Counter[int] = Counter()

    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Case[Any], **kwargs: Any) -> Response:
            before = table_counts(engine)
            kwargs["headers"] = {**(kwargs.get("headers") or {}), **fuzzed.auth}
            response = case.call(timeout=30, **kwargs)
            calls[response.status_code] += 1
            is_json = response.headers.get("content-type", [""])[0].startswith("application/json")
            check_error_body(case, response.status_code, response.json() if is_json else None)
            if response.status_code >= 400:
                assert table_counts(engine) == before, f"{case.method} {case.path} wrote"
            return response

        def validate_response(
            self, response: Response, case: Case[Any], *args: Any, **kwargs: Any
        ) -> None:
            case.validate_response(response, excluded_checks=EXCLUDED)

    Machine.run(settings=fuzz_settings(STATEFUL_STEPS))
    print(f"stateful: {sum(calls.values())} requests, by status {dict(sorted(calls.items()))}")
    assert sum(calls.values()) >= STATEFUL_STEPS
