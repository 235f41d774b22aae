"""Manifest parsing: good rows, every bad-row kind with its line, encodings, random bytes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.reconcile.manifests import (
    DEFAULT_MAX_BYTES,
    Format,
    ManifestError,
    ManifestTooLarge,
    Parsed,
    Shipment,
    format_for,
    parse_chip_deliveries,
    parse_shipments,
)

HEADER = "serial,work_order,ship_date,carton,pallet,destination\n"
GOOD = "BRT00001,WO-1,2026-11-26,C-1,P-1,Rotterdam DC\n"


def shipments(
    text: str | bytes, fmt: Format = "csv", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Parsed[Shipment]:
    data = text.encode() if isinstance(text, str) else text
    return parse_shipments(io.BytesIO(data), fmt, max_bytes=max_bytes)


def test_good_rows_parse_with_their_line_numbers() -> None:
    parsed = shipments(HEADER + GOOD + "\n" + "BRT00002,WO-1,2026-11-26,C-2,P-1,Lyon\n")
    assert parsed.errors == ()
    assert [(r.serial, r.line) for r in parsed.records] == [("BRT00001", 2), ("BRT00002", 4)]
    first = parsed.records[0]
    assert (first.work_order, first.ship_date, first.carton, first.pallet, first.destination) == (
        "WO-1",
        date(2026, 11, 26),
        "C-1",
        "P-1",
        "Rotterdam DC",
    )


def test_header_may_come_in_any_order_and_case() -> None:
    text = "Destination,PALLET,carton,ship_date,work_order,serial\nLyon,P,C,2026-01-02,WO,S1\n"
    (record,) = shipments(text).records
    assert (record.serial, record.destination) == ("S1", "Lyon")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        pytest.param(",WO-1,2026-11-26,C-1,P-1,X", "serial is missing", id="empty-serial"),
        pytest.param("S,WO-1,26/11/2026,C-1,P-1,X", "not an ISO date", id="bad-date"),
        pytest.param("S,WO-1,2026-02-30,C-1,P-1,X", "not an ISO date", id="impossible-date"),
        pytest.param("S,WO-1,2026-11-26,C-1,P-1", "expected 6 fields, found 5", id="short-row"),
        pytest.param("S,WO-1,2026-11-26,C-1,P-1,X,extra", "found 7", id="long-row"),
        pytest.param("S" * 65 + ",WO,2026-11-26,C,P,X", "longer than 64", id="too-long"),
        pytest.param('"S\x07",WO,2026-11-26,C,P,X', "control characters", id="control-char"),
        pytest.param(GOOD.strip(), "duplicate of line 2", id="duplicate"),
    ],
)
def test_each_bad_row_kind_is_reported_with_its_line(row: str, reason: str) -> None:
    parsed = shipments(HEADER + GOOD + row + "\n" + GOOD.replace("C-1", "C-9"))
    assert len(parsed.records) == 2
    (error,) = parsed.errors
    assert error.line == 3
    assert reason in error.reason


def test_same_serial_in_another_carton_parses_a_double_shipment_is_for_the_report() -> None:
    parsed = shipments(HEADER + GOOD + GOOD.replace("C-1", "C-2"))
    assert parsed.errors == ()
    assert len(parsed.records) == 2


def test_utf8_bom_and_non_ascii_are_accepted() -> None:
    text = HEADER + "BRT1,WO-1,2026-11-26,C-1,P-1,Düsseldorf — Lager 3\n"
    (record,) = shipments(b"\xef\xbb\xbf" + text.encode()).records
    assert record.destination == "Düsseldorf — Lager 3"


def test_a_latin1_line_is_a_row_error_not_a_crash() -> None:
    data = (HEADER + GOOD).encode() + "S2,WO,2026-11-26,C,P,Düsseldorf\n".encode("latin-1")
    parsed = shipments(data)
    assert len(parsed.records) == 1
    assert [(e.line, e.reason) for e in parsed.errors] == [(3, "not valid UTF-8")]


def test_utf16_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ManifestError, match="UTF-16"):
        shipments((HEADER + GOOD).encode("utf-16"))


@pytest.mark.parametrize(
    "header",
    [
        "serial,work_order,ship_date,carton,pallet\n",
        "serial,serial,work_order,ship_date,carton,pallet,destination\n",
        "",
    ],
    ids=["missing-column", "repeated-column", "empty-file"],
)
def test_a_bad_header_rejects_the_file(header: str) -> None:
    with pytest.raises(ManifestError, match="header"):
        shipments(header + GOOD)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [(HEADER, "csv"), ("[]", "json"), ('{"records": []}', "json"), ("\n\n", "jsonl")],
    ids=["csv-header-only", "json-empty-array", "json-empty-records", "jsonl-blank"],
)
def test_a_manifest_of_no_records_is_refused(text: str, fmt: Format) -> None:
    with pytest.raises(ManifestError, match="no records") as refused:
        shipments(text, fmt)
    assert refused.value.code == "manifest_empty"
    with pytest.raises(ManifestError, match="no records"):
        parse_chip_deliveries(io.BytesIO(b"[]"), "json")


def test_a_file_over_the_limit_is_refused() -> None:
    data = HEADER + GOOD * 100
    assert len(shipments(data, max_bytes=len(data)).records) == 1  # 99 duplicates
    with pytest.raises(ManifestTooLarge, match="limit"):
        shipments(data, max_bytes=len(data) - 1)
    with pytest.raises(ManifestTooLarge):
        shipments(json.dumps([{}] * 100), "json", max_bytes=50)
    with pytest.raises(ManifestTooLarge):  # one endless line is not read into memory whole
        shipments(HEADER.encode() + b"x" * 1_000_000, max_bytes=1000)


def test_json_array_and_json_lines() -> None:
    row = {
        "serial": "S1",
        "work_order": "WO",
        "ship_date": "2026-11-26",
        "carton": "C",
        "pallet": "P",
        "destination": "D",
    }
    parsed = shipments(json.dumps([row, {**row, "ship_date": 5}, 7]), "json")
    assert [r.serial for r in parsed.records] == ["S1"]
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (2, "ship_date is missing"),
        (3, "not a JSON object"),
    ]
    lines = json.dumps(row) + "\n\n{not json\n" + json.dumps({**row, "serial": "S2"}) + "\n"
    parsed = shipments(lines, "jsonl")
    assert [r.line for r in parsed.records] == [1, 4]
    assert [(e.line, e.reason) for e in parsed.errors] == [(3, "not a JSON object")]
    with pytest.raises(ManifestError):
        shipments(b"\xff[", "json")


def test_format_follows_the_file_name() -> None:
    assert [format_for(n) for n in ("a.CSV", "b.json", "c.jsonl", "d.ndjson")] == [
        "csv",
        "json",
        "jsonl",
        "jsonl",
    ]
    with pytest.raises(ManifestError):
        format_for("manifest.xlsx")


def test_chip_deliveries() -> None:
    text = (
        "vendor,chip_id,delivered_at\n"
        "Microchip,0123ABCD,2026-11-01\n"
        "NXP,0456,2026-11-02T08:00:00+01:00\n"
        "NXP,0123ABCD,2026-11-03\n"
        "NXP,0789,yesterday\n"
    )
    parsed = parse_chip_deliveries(io.BytesIO(text.encode()))
    assert [(c.chip_id, c.delivered_at) for c in parsed.records] == [
        ("0123ABCD", datetime(2026, 11, 1, tzinfo=UTC)),
        ("0456", datetime(2026, 11, 2, 7, tzinfo=UTC)),
    ]
    assert [e.line for e in parsed.errors] == [4, 5]
    assert "repeats line 2" in parsed.errors[0].reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["csv", "json", "jsonl"]))
def test_random_bytes_parse_or_reject_cleanly(data: bytes, fmt: Format) -> None:
    for parse in (parse_shipments, parse_chip_deliveries):
        try:
            parsed = parse(io.BytesIO(data), fmt, max_bytes=1500)
        except ManifestError:
            continue
        assert all(e.line >= 1 for e in parsed.errors)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(max_size=12), min_size=0, max_size=8), max_size=20))
def test_random_csv_rows_after_a_good_header_never_crash(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    try:
        parsed = shipments(HEADER + out.getvalue())
    except ManifestError as e:
        refused: str | None = e.code
    else:
        refused = None
    if refused is not None:  # only a file of nothing but blank rows after the header
        assert refused == "manifest_empty"
        assert all(not any(cell.strip() for cell in row) for row in rows)
        return
    assert len(parsed.records) + len(parsed.errors) <= len(rows) + 1
