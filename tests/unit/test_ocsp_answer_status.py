"""``answer_status`` reads what an OCSP answer says (for metrics) from our own DER, and never
raises on bytes it does not understand."""

from __future__ import annotations

import pytest
from cryptography.x509 import ocsp
from hypothesis import given
from hypothesis import strategies as st

from birthright.ca.ocsp import answer_status, unsuccessful
from tests.unit.test_ocsp_responder import NOW, Statuses, request, responder


@pytest.mark.parametrize(
    ("serial", "nonce", "expected"),
    [
        (1, None, "good"),
        (2, None, "revoked"),
        (4, None, "revoked"),
        (5, None, "unknown"),
        (1, b"0123456789abcdef", "good"),
        (2, b"0123456789abcdef", "revoked"),
    ],
    ids=["good", "revoked", "hold", "unknown", "good-with-nonce", "revoked-with-nonce"],
)
def test_signed_answers_are_read_back(serial: int, nonce: bytes | None, expected: str) -> None:
    answer = responder().respond(request(serial, nonce=nonce), Statuses(), NOW)
    assert answer_status(answer) == expected


@pytest.mark.parametrize("status", list(ocsp.OCSPResponseStatus)[1:], ids=lambda s: s.name)
def test_unsuccessful_answers_name_their_status(status: ocsp.OCSPResponseStatus) -> None:
    assert answer_status(unsuccessful(status)) == status.name.lower()


@given(st.binary(max_size=300))
def test_any_bytes_give_a_label_not_an_exception(data: bytes) -> None:
    assert isinstance(answer_status(data), str)
