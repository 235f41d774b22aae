"""Parse shipped-unit manifests and chip-delivery lists: untrusted bytes in, records out.

Pure: the parsers take a binary stream and return records plus per-row errors (with the line
number and a reason). They never stop at the first bad row, and they refuse a file larger than
``max_bytes`` outright. Input is UTF-8 (a leading BOM is accepted); a line that is not UTF-8 is
a row error, not a crash. CSV and JSON Lines are read one line at a time; a JSON array is read
whole, which the size cap bounds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Generic, Literal, TypeVar

from birthright.errors import InputError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_FIELD = 64
SHIPMENT_COLUMNS = ("serial", "work_order", "ship_date", "carton", "pallet", "destination")
CHIP_COLUMNS = ("vendor", "chip_id", "delivered_at")
Format = Literal["csv", "json", "jsonl"]
R = TypeVar("R")


class ManifestError(InputError):
    """The file as a whole cannot be read: too large, wrong header, not CSV/JSON."""

    code = "manifest_invalid"


class ManifestTooLarge(ManifestError):
    code = "manifest_too_large"
    http_status = 413


class ManifestRowsInvalid(InputError):
    """Some rows are bad; nothing was imported. ``errors`` names each row and why."""

    code = "manifest_rows_invalid"

    def __init__(self, errors: tuple[RowError, ...]) -> None:
        first = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(
            f"{len(errors)} bad row(s), nothing imported: {first}{more}",
            errors=[str(e) for e in errors[:100]],
        )
        self.errors = errors


@dataclass(frozen=True)
class RowError:
    """A refused row: its line, why, a stable code and (for signed manifests) its entry."""

    line: int
    reason: str
    code: str = "row_invalid"
    entry: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Shipment:
    serial: str
    work_order: str
    ship_date: date
    carton: str
    pallet: str
    destination: str
    line: int

    @property
    def key(self) -> tuple[str, date, str]:
        return (self.serial, self.ship_date, self.carton)


@dataclass(frozen=True)
class ChipDelivery:
    vendor: str
    chip_id: str
    delivered_at: datetime
    line: int


@dataclass(frozen=True)
class Parsed(Generic[R]):
    records: tuple[R, ...]
    errors: tuple[RowError, ...]


def format_for(filename: str) -> Format:
    name = filename.lower()
    for suffix, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        if name.endswith(suffix):
            return fmt  # type: ignore[return-value]
    if name.endswith(".json"):
        return "json"
    raise ManifestError(
        f"{filename}: expected a .csv, .json or .jsonl file", code="manifest_format"
    )


def _lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, str | None]]:
    """(line number, text or None when not UTF-8), refusing to read past ``max_bytes``."""
    total, number = 0, 0
    while raw := stream.readline(max_bytes - total + 1):  # one line, never past the cap
        number += 1
        total += len(raw)
        if total > max_bytes:
            raise ManifestTooLarge(
                f"the file is larger than the {max_bytes}-byte limit", limit=max_bytes
            )
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise ManifestError("UTF-16 is not supported: save as UTF-8", code="encoding")
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def _field_rows(
    stream: IO[bytes], fmt: Format, max_bytes: int, columns: tuple[str, ...]
) -> Iterator[tuple[int, Mapping[str, object] | RowError]]:
    if fmt == "csv":
        yield from _csv_rows(stream, max_bytes, columns)
    elif fmt == "jsonl":
        for number, text in _lines(stream, max_bytes):
            if text is None:
                yield number, RowError(number, "not valid UTF-8")
            elif text.strip():
                yield number, _json_object(number, text)
    else:
        yield from _json_array_rows(stream, max_bytes)


def _json_object(number: int, text: str) -> Mapping[str, object] | RowError:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return RowError(number, "not a JSON object")
    return value if isinstance(value, dict) else RowError(number, "not a JSON object")


def _json_array_rows(
    stream: IO[bytes], max_bytes: int
) -> Iterator[tuple[int, Mapping[str, object] | RowError]]:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ManifestTooLarge(f"the file is larger than the {max_bytes}-byte limit")
    try:
        value = json.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ManifestError("the file is not UTF-8 JSON", code="manifest_json") from e
    if isinstance(value, dict) and isinstance(value.get("records"), list):
        value = value["records"]
    if not isinstance(value, list):
        raise ManifestError("expected a JSON array of records", code="manifest_json")
    for index, item in enumerate(value, start=1):
        yield index, item if isinstance(item, dict) else RowError(index, "not a JSON object")


def _csv_rows(
    stream: IO[bytes], max_bytes: int, columns: tuple[str, ...]
) -> Iterator[tuple[int, Mapping[str, object] | RowError]]:
    current = 0
    bad: list[int] = []

    def text_lines() -> Iterator[str]:
        nonlocal current
        for number, text in _lines(stream, max_bytes):
            current = number
            if text is None:
                bad.append(number)
                yield "\n"  # keep the reader in step; reported below
            else:
                yield text

    reader = csv.reader(text_lines(), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise ManifestError(f"line 1: unreadable header ({e})", code="manifest_header") from e
    if bad and bad[0] == 1:
        raise ManifestError("line 1: the header is not UTF-8", code="encoding")
    names = [h.strip().lower() for h in header or []]
    missing = [c for c in columns if c not in names]
    if missing or len(set(names)) != len(names):
        raise ManifestError(
            f"line 1: the header must name {', '.join(columns)} once each"
            + (f" (missing: {', '.join(missing)})" if missing else ""),
            code="manifest_header",
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield current, RowError(current, f"malformed CSV ({e})")
            continue
        if bad and bad[-1] == current:
            yield current, RowError(current, "not valid UTF-8")
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield current, RowError(current, f"expected {len(names)} fields, found {len(row)}")
            continue
        yield current, dict(zip(names, row, strict=True))


def _text(fields: Mapping[str, object], name: str, *, limit: int = MAX_FIELD) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is missing")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if not value.isprintable():
        raise ValueError(f"{name} contains control characters")
    return value


def _shipment(line: int, fields: Mapping[str, object]) -> Shipment:
    raw_date = _text(fields, "ship_date")
    try:
        ship_date = date.fromisoformat(raw_date)
    except ValueError:
        raise ValueError(f"ship_date {raw_date!r} is not an ISO date (YYYY-MM-DD)") from None
    return Shipment(
        serial=_text(fields, "serial"),
        work_order=_text(fields, "work_order"),
        ship_date=ship_date,
        carton=_text(fields, "carton"),
        pallet=_text(fields, "pallet"),
        destination=_text(fields, "destination", limit=128),
        line=line,
    )


def _chip(line: int, fields: Mapping[str, object]) -> ChipDelivery:
    raw = _text(fields, "delivered_at")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"delivered_at {raw!r} is not an ISO date or date-time") from None
    return ChipDelivery(
        vendor=_text(fields, "vendor"),
        chip_id=_text(fields, "chip_id", limit=128),
        delivered_at=at if at.tzinfo else at.replace(tzinfo=UTC),
        line=line,
    )


def _parsed(records: list[R], errors: list[RowError]) -> Parsed[R]:
    if not records and not errors:
        # An upload of nothing is a mistake (wrong file, wrong format), never a manifest.
        raise ManifestError("the file holds no records", code="manifest_empty")
    return Parsed(tuple(records), tuple(errors))


def parse_shipments(
    stream: IO[bytes], fmt: Format = "csv", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Parsed[Shipment]:
    """Every good shipment row, and every bad one with its line and reason.

    A row repeating an earlier row's (serial, ship_date, carton) is a duplicate, an error; the
    same serial in another carton or on another day is a double shipment, which the
    reconciliation reports, so it parses.
    """
    records: list[Shipment] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, date, str], int] = {}
    for line, fields in _field_rows(stream, fmt, max_bytes, SHIPMENT_COLUMNS):
        if isinstance(fields, RowError):
            errors.append(fields)
            continue
        try:
            shipment = _shipment(line, fields)
        except ValueError as e:
            errors.append(RowError(line, str(e)))
            continue
        if shipment.key in seen:
            errors.append(RowError(line, f"duplicate of line {seen[shipment.key]}"))
            continue
        seen[shipment.key] = line
        records.append(shipment)
    return _parsed(records, errors)


def parse_chip_deliveries(
    stream: IO[bytes], fmt: Format = "csv", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Parsed[ChipDelivery]:
    """Chip ids a vendor delivered (plain CSV/JSON: vendor, chip_id, delivered_at)."""
    records: list[ChipDelivery] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for line, fields in _field_rows(stream, fmt, max_bytes, CHIP_COLUMNS):
        if isinstance(fields, RowError):
            errors.append(fields)
            continue
        try:
            chip = _chip(line, fields)
        except ValueError as e:
            errors.append(RowError(line, str(e)))
            continue
        if chip.chip_id in seen:
            errors.append(RowError(line, f"chip id repeats line {seen[chip.chip_id]}"))
            continue
        seen[chip.chip_id] = line
        records.append(chip)
    return _parsed(records, errors)
