"""Revocation use cases against in-memory fakes of their ports: selection, tokens, hold vs final."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from birthright.audit.events import AuditEvent
from birthright.errors import BirthrightError
from birthright.revocation.model import (
    CertStatus,
    CrlState,
    DeviceState,
    Match,
    PublishedCrl,
    Reason,
    Recall,
    Revocation,
    RevokedEntry,
    Selection,
    matched_digest,
)
from birthright.revocation.service import RevocationService

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass
class Unit:
    id: int
    serial: str
    cert_serial: str
    product: str
    work_order_id: str
    site: str
    line: str
    station_id: str
    enrolled_at: datetime
    status: str = "active"


@dataclass
class State:
    units: list[Unit] = field(default_factory=list)
    revocations: dict[str, Revocation] = field(default_factory=dict)
    recalls: dict[str, Recall] = field(default_factory=dict)
    crl: CrlState = field(default_factory=lambda: CrlState(0, True, None))
    audit: list[AuditEvent] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def matches(s: Selection, u: Unit) -> bool:
    checks = [
        s.product in (None, u.product),
        s.work_order_id in (None, u.work_order_id),
        s.site in (None, u.site),
        s.line in (None, u.line),
        s.station_id in (None, u.station_id),
        not s.serials or u.serial in s.serials,
        s.serial_first is None or u.serial >= s.serial_first,
        s.serial_last is None or u.serial <= s.serial_last,
        s.enrolled_since is None or u.enrolled_at >= s.enrolled_since,
        s.enrolled_until is None or u.enrolled_at < s.enrolled_until,
    ]
    return u.status == "active" and all(checks)


class FakeTx:
    def __init__(self, state: State) -> None:
        self.s = state

    def _unit(self, serial: str) -> Unit | None:
        return next((u for u in self.s.units if u.serial == serial), None)

    def device(self, serial: str) -> DeviceState | None:
        u = self._unit(serial)
        return DeviceState(u.serial, u.cert_serial, u.status) if u else None

    def revocation(self, cert_serial: str) -> Revocation | None:
        return self.s.revocations.get(cert_serial)

    def put_revocation(self, revocation: Revocation) -> None:
        self.s.revocations[revocation.cert_serial] = revocation

    def set_status(self, serial: str, status: str) -> None:
        unit = self._unit(serial)
        assert unit is not None
        unit.status = status

    def _matching(self, selection: Selection, cutoff: int | None) -> list[Unit]:
        return [
            u for u in self.s.units if matches(selection, u) and (cutoff is None or u.id <= cutoff)
        ]

    def match(self, selection: Selection, *, cutoff: int | None, sample: int) -> Match:
        found = self._matching(selection, cutoff)
        return Match(
            max((u.id for u in found), default=0),
            tuple(u.cert_serial for u in found),
            tuple(u.serial for u in found[:sample]),
        )

    def revoke_matching(
        self, selection: Selection, *, cutoff: int, reason: Reason, recall_id: str, now: datetime
    ) -> int:
        found = self._matching(selection, cutoff)
        for u in found:
            self.put_revocation(Revocation(u.cert_serial, u.serial, now, reason, recall_id))
            u.status = reason.device_status
        return len(found)

    def add_recall(self, recall: Recall) -> None:
        self.s.recalls[recall.token_hash] = recall

    def recall_for_token(self, token_hash: str) -> Recall | None:
        return self.s.recalls.get(token_hash)

    def mark_executed(self, recall_id: str, now: datetime) -> None:
        for h, r in self.s.recalls.items():
            if r.recall_id == recall_id:
                self.s.recalls[h] = replace(r, executed_at=now)

    def crl_state(self) -> CrlState:
        return self.s.crl

    def crl_entries(self) -> Iterator[RevokedEntry]:
        for r in self.s.revocations.values():
            if r.in_force:
                yield RevokedEntry(r.cert_serial, r.revoked_at, r.reason)

    def save_crl(self, crl: PublishedCrl) -> None:
        self.s.crl = CrlState(crl.number, False, crl)

    def crl_changed(self) -> None:
        self.s.crl = replace(self.s.crl, dirty=True)

    def audit(self, event: AuditEvent, now: datetime) -> None:
        self.s.audit.append(event)

    def emit(self, event_type: str, data: dict[str, Any], now: datetime) -> None:
        self.s.events.append((event_type, data))

    def entitlements(
        self, *, serial: str | None = None, recall_id: str | None = None
    ) -> list[dict[str, str]]:
        return []

    def recalled_serials(self, recall_id: str) -> list[str]:
        return sorted(r.serial for r in self.s.revocations.values() if r.recall_id == recall_id)


class FakeStore:
    def __init__(self) -> None:
        self.state = State()

    @contextmanager
    def transaction(self) -> Iterator[FakeTx]:
        work = copy.deepcopy(self.state)
        yield FakeTx(work)
        self.state = work  # only on success: an exception leaves the state untouched

    def crl_state(self) -> CrlState:
        return self.state.crl

    def cert_status(self, cert_serial: str) -> CertStatus:
        if not any(u.cert_serial == cert_serial for u in self.state.units):
            return CertStatus("unknown")
        r = self.state.revocations.get(cert_serial)
        if r is None or not r.in_force:
            return CertStatus("good")
        return CertStatus("revoked", r.revoked_at, r.reason)

    def enroll(self, n: int, *, work_order_id: str = "WO-1", line: str = "L1") -> list[Unit]:
        made = []
        for _ in range(n):
            i = len(self.state.units) + 1
            unit = Unit(
                i, f"BR{i:08d}", format(0x1000 + i, "x"), "P1", work_order_id, "S1", line,
                f"st-{line}", T0 + timedelta(minutes=i),
            )  # fmt: skip
            self.state.units.append(unit)
            made.append(unit)
        return made


class FakeSigner:
    def __init__(self) -> None:
        self.signed: list[tuple[int, int]] = []

    def sign_crl(
        self, revocations: Iterable[RevokedEntry], number: int, this: datetime, nxt: datetime
    ) -> bytes:
        revocations = list(revocations)
        self.signed.append((number, len(revocations)))
        return f"crl-{number}-{len(revocations)}".encode()

    def answer_ocsp(
        self, request_der: bytes, status_of: Callable[[int], CertStatus], now: datetime
    ) -> bytes:
        return status_of(int(request_der.decode(), 16)).state.encode()


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(days=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer() -> FakeSigner:
    return FakeSigner()


@pytest.fixture
def service(store: FakeStore, clock: Clock, signer: FakeSigner) -> RevocationService:
    return RevocationService(store=store, signer=signer, clock=clock)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(BirthrightError) as e:
        call()
    return e.value.code


def test_final_revocation_cannot_be_released_or_repeated(
    service: RevocationService, store: FakeStore
) -> None:
    (unit,) = store.enroll(1)
    service.revoke(unit.serial, Reason.keyCompromise)
    assert store.state.units[0].status == "revoked"
    assert code_of(lambda: service.release(unit.serial)) == "revocation_final"
    assert code_of(lambda: service.revoke(unit.serial, Reason.superseded)) == "already_revoked"
    assert code_of(lambda: service.revoke("BR-NONE", Reason.superseded)) == "device_unknown"
    assert [e.event for e in store.state.audit] == ["device.revoked"]


def test_a_hold_is_released_or_made_final(service: RevocationService, store: FakeStore) -> None:
    a, b = store.enroll(2)
    service.revoke(a.serial, Reason.certificateHold)
    assert store.state.units[0].status == "on_hold"
    assert code_of(lambda: service.revoke(a.serial, Reason.certificateHold)) == "already_revoked"
    assert service.release(a.serial).status == "active"
    assert service.status(a.serial) == (DeviceState(a.serial, a.cert_serial, "active"), None)
    assert code_of(lambda: service.release(a.serial)) == "not_revoked"
    service.revoke(b.serial, Reason.certificateHold)
    service.revoke(b.serial, Reason.keyCompromise)  # hold -> final is allowed
    assert store.state.units[1].status == "revoked"
    assert code_of(lambda: service.release(b.serial)) == "revocation_final"


def test_each_status_change_puts_its_event_in_the_outbox_refusals_none(
    service: RevocationService, store: FakeStore
) -> None:
    a, b = store.enroll(2)
    service.revoke(a.serial, Reason.certificateHold)
    service.release(a.serial)
    service.revoke(b.serial, Reason.keyCompromise)
    assert code_of(lambda: service.revoke(b.serial, Reason.superseded)) == "already_revoked"
    assert code_of(lambda: service.release(b.serial)) == "revocation_final"
    assert [t for t, _ in store.state.events] == [
        "device.held",
        "device.released",
        "device.revoked",
    ]
    revoked = store.state.events[-1][1]
    assert revoked["serial"] == b.serial
    assert revoked["reason"] == "keyCompromise"
    assert revoked["previous_status"] == "active"


def test_a_recall_emits_its_serials_in_chunks(
    service: RevocationService, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("birthright.events.model.CHUNK", 2)
    units = store.enroll(5)
    service.execute(service.preview(Selection(line="L1"), Reason.superseded).token)
    events = [d for t, d in store.state.events if t == "recall.executed"]
    assert [(d["part"], d["parts"]) for d in events] == [(1, 3), (2, 3), (3, 3)]
    assert [s for d in events for s in d["serials"]] == [u.serial for u in units]
    assert {d["count"] for d in events} == {5}


def test_the_token_binds_the_previewed_set(service: RevocationService, store: FakeStore) -> None:
    store.enroll(3, work_order_id="WO-1")
    store.enroll(2, work_order_id="WO-2")
    preview = service.preview(Selection(work_order_id="WO-1"), Reason.superseded)
    assert preview.count == 3
    assert preview.sample == ("BR00000001", "BR00000002", "BR00000003")
    stored = next(iter(store.state.recalls.values()))
    assert preview.token not in repr(stored)  # only its hash is kept
    assert stored.matched_digest == matched_digest(u.cert_serial for u in store.state.units[:3])
    store.enroll(1, work_order_id="WO-1")  # enrolled after the preview
    result = service.execute(preview.token)
    assert result.revoked == 3
    assert [u.status for u in store.state.units] == ["revoked"] * 3 + ["active"] * 3
    assert [e.event for e in store.state.audit] == ["recall.previewed", "recall.executed"]
    assert store.state.audit[-1].detail["selection"] == {"work_order_id": "WO-1"}
    assert code_of(lambda: service.execute(preview.token)) == "recall_executed"
    assert code_of(lambda: service.execute("x" * 32)) == "recall_unknown"


def test_a_changed_set_or_an_old_preview_is_refused(
    service: RevocationService, store: FakeStore, clock: Clock
) -> None:
    units = store.enroll(3)
    token = service.preview(Selection(line="L1"), Reason.keyCompromise).token
    service.revoke(units[0].serial, Reason.keyCompromise)
    assert code_of(lambda: service.execute(token)) == "recall_stale"
    assert [u.status for u in store.state.units] == ["revoked", "active", "active"]
    token = service.preview(Selection(line="L1"), Reason.keyCompromise).token
    clock.now += timedelta(hours=2)
    assert code_of(lambda: service.execute(token)) == "recall_expired"


@pytest.mark.parametrize(
    ("selection", "count"),
    [
        pytest.param({"serials": ("BR00000002", "BR00000009")}, 1, id="serial-list"),
        pytest.param({"serial_first": "BR00000002", "serial_last": "BR00000004"}, 3, id="range"),
        pytest.param({"enrolled_since": T0 + timedelta(minutes=2),
                      "enrolled_until": T0 + timedelta(minutes=4)}, 2, id="time-window"),
        pytest.param({"product": "P1", "line": "L2"}, 2, id="product-and-line"),
        pytest.param({"station_id": "st-L1", "site": "S1"}, 4, id="station-and-site"),
        pytest.param({"all": True}, 6, id="all"),
    ],
)  # fmt: skip
def test_selection_criteria(
    service: RevocationService, store: FakeStore, selection: dict[str, object], count: int
) -> None:
    store.enroll(4)
    store.enroll(2, line="L2")
    assert service.preview(Selection(**selection), Reason.superseded).count == count  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "code"),
    [
        pytest.param(dict, "recall_needs_all", id="no-criteria"),
        pytest.param(lambda: {"all": True, "line": "L1"}, "bad_selection", id="all-and-line"),
        pytest.param(lambda: {"serial_first": "B", "serial_last": "A"}, "bad_selection",
                     id="reversed-range"),
        pytest.param(lambda: {"enrolled_since": datetime(2026, 1, 1)}, "bad_selection",
                     id="naive-time"),
        pytest.param(lambda: {"serials": tuple(str(i) for i in range(10_001))},
                     "selection_too_large", id="too-many-serials"),
    ],
)  # fmt: skip
def test_bad_selections_are_refused(build: Callable[[], dict[str, object]], code: str) -> None:
    assert code_of(lambda: Selection(**build())) == code  # type: ignore[arg-type]


def test_a_selection_matching_nothing_is_refused(
    service: RevocationService, store: FakeStore
) -> None:
    store.enroll(1)
    assert code_of(lambda: service.preview(Selection(line="L9"), Reason.superseded)) == (
        "recall_empty"
    )
    assert store.state.recalls == {}


def test_selection_survives_its_stored_form() -> None:
    s = Selection(serials=("b", "a"), enrolled_since=T0, site="S1")
    assert Selection.from_mapping(s.as_dict()) == Selection(
        serials=("a", "b"), enrolled_since=T0, site="S1"
    )


def test_reasons_parse_by_rfc_name() -> None:
    assert Reason.parse("certificateHold").final is False
    assert Reason.parse("keyCompromise").device_status == "revoked"
    assert code_of(lambda: Reason.parse("removeFromCRL")) == "bad_reason"


def test_the_crl_is_cached_until_revocations_change_or_it_ages(
    service: RevocationService, store: FakeStore, signer: FakeSigner, clock: Clock
) -> None:
    a, _ = store.enroll(2)
    assert service.crl().der == b"crl-1-0"
    assert service.crl().number == 1  # cached
    service.revoke(a.serial, Reason.certificateHold)
    assert service.crl().der == b"crl-2-1"
    service.release(a.serial)
    assert service.crl().der == b"crl-3-0"  # a released hold leaves the CRL
    clock.now += timedelta(hours=7)
    assert service.crl().number == 4  # refreshed well before nextUpdate
    assert signer.signed == [(1, 0), (2, 1), (3, 0), (4, 0)]


def test_cert_status_for_ocsp(service: RevocationService, store: FakeStore) -> None:
    a, b = store.enroll(2)
    service.revoke(a.serial, Reason.keyCompromise)
    assert service.ocsp(a.cert_serial.encode()) == b"revoked"
    assert service.ocsp(b.cert_serial.encode()) == b"good"
    assert service.ocsp(b"ffff") == b"unknown"
    status = service.cert_status(int(a.cert_serial, 16))
    assert (status.reason, status.revoked_at) == (Reason.keyCompromise, T0 + timedelta(days=1))
