"""The hook's answer is trusted only when signed by its key, for this very query."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from birthright.policyhook import HookConfig, HookQuery, PolicyHookUnavailable, parse_answer
from birthright.policyhook.model import sign_answer

KEY = ec.generate_private_key(ec.SECP256R1())
CONFIG = HookConfig("P", "http://127.0.0.1:1/decide", KEY.public_key(), 500)
QUERY = HookQuery(
    request_id="r-1",
    nonce="n-1",
    timestamp="2026-11-28T00:00:00+00:00",
    product="P",
    station="st",
    work_order="WO",
    serial="S1",
    chip_id="C1",
    public_key="PEM",
)


def _answer(**change: Any) -> dict[str, Any]:
    answer: dict[str, Any] = sign_answer(KEY, vars(QUERY), "allow", "")
    answer.update(change)
    return answer


def test_a_signed_answer_for_this_query_is_accepted() -> None:
    assert parse_answer(CONFIG, QUERY, json.dumps(_answer()).encode()).allowed
    refused = sign_answer(KEY, vars(QUERY), "refuse", "no")
    answer = parse_answer(CONFIG, QUERY, json.dumps(refused).encode())
    assert (answer.allowed, answer.reason) == (False, "no")


def _resigned_for_other_query() -> dict[str, Any]:
    return sign_answer(KEY, {**vars(QUERY), "nonce": "n-0"}, "allow", "")


CASES: dict[str, Callable[[], dict[str, Any] | bytes]] = {
    "decision_flipped": lambda: _answer(decision="refuse"),
    "reason_changed": lambda: _answer(reason="x"),
    "other_key": lambda: sign_answer(
        ec.generate_private_key(ec.SECP256R1()), vars(QUERY), "allow", ""
    ),
    "other_nonce": _resigned_for_other_query,
    "unknown_decision": lambda: sign_answer(KEY, vars(QUERY), "maybe", ""),
    "signature_not_base64": lambda: _answer(signature="***"),
    "missing_field": lambda: {k: v for k, v in _answer().items() if k != "nonce"},
    "not_json": lambda: b"allow",
    "not_an_object": lambda: b"[1]",
    "too_large": lambda: b" " * 9000,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_anything_else_is_no_answer(case: str) -> None:
    made = CASES[case]()
    body = made if isinstance(made, bytes) else json.dumps(made).encode()
    with pytest.raises(PolicyHookUnavailable) as caught:
        parse_answer(CONFIG, QUERY, body)
    assert caught.value.code == "policy_hook_unavailable"


@given(st.binary(max_size=300))
def test_parse_or_refuse_never_crashes(body: bytes) -> None:
    with pytest.raises(PolicyHookUnavailable):
        parse_answer(CONFIG, QUERY, body)
