"""Operators: the rights table, the password policy, login lockout, session expiry, tokens.

Pure logic against an in-memory fake of the ``OperatorStore`` port and a frozen clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from birthright.audit.events import AuditEvent
from birthright.errors import ConflictError, InputError
from birthright.operators import passwords, tokens
from birthright.operators.model import (
    Credentials,
    Operator,
    OperatorUnauthenticated,
    SessionRecord,
)
from birthright.operators.roles import RIGHTS, Permission, Role, can
from birthright.operators.service import OperatorService

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
GOOD = "a long enough passphrase"


@dataclass
class MemoryOperators:
    creds: dict[str, Credentials] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def add(self, operator: Operator, password_hash: str) -> None:
        self.creds[operator.name] = Credentials(operator, password_hash, 0, None)

    def credentials(self, name: str) -> Credentials | None:
        return self.creds.get(name)

    def list(self) -> list[Operator]:
        return [c.operator for c in self.creds.values()]

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self.creds[name] = replace(self.creds[name], password_hash=password_hash)

    def login_failed(self, name: str, locked_until: datetime | None) -> None:
        c = self.creds[name]
        failed = 0 if locked_until else c.failed_logins + 1
        self.creds[name] = replace(c, failed_logins=failed, locked_until=locked_until)

    def login_succeeded(self, name: str) -> None:
        self.creds[name] = replace(self.creds[name], failed_logins=0, locked_until=None)

    def set_disabled(self, name: str, disabled: bool) -> None:
        c = self.creds[name]
        self.creds[name] = replace(c, operator=replace(c.operator, disabled=disabled))

    def add_session(self, digest: str, name: str, now: datetime) -> None:
        self.sessions[digest] = SessionRecord(name, now, now)

    def session(self, digest: str) -> SessionRecord | None:
        return self.sessions.get(digest)

    def touch_session(self, digest: str, now: datetime) -> None:
        self.sessions[digest] = replace(self.sessions[digest], last_seen_at=now)

    def end_session(self, digest: str) -> None:
        self.sessions.pop(digest, None)

    def end_sessions_of(self, name: str) -> None:
        self.sessions = {k: v for k, v in self.sessions.items() if v.operator_name != name}

    def add_token(self, digest: str, name: str, label: str, now: datetime) -> None:
        self.tokens[digest] = name

    def token_owner(self, digest: str) -> str | None:
        return self.tokens.get(digest)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Audit:
    events: list[AuditEvent] = field(default_factory=list)

    def record(self, event: AuditEvent, now: datetime) -> None:
        self.events.append(event)


World = tuple[OperatorService, MemoryOperators, Clock, Audit]


@pytest.fixture
def world() -> World:
    store, clock, audit = MemoryOperators(), Clock(), Audit()
    service = OperatorService(store=store, audit=audit, clock=clock)
    service.create("alice", Role.ADMIN, GOOD)
    return service, store, clock, audit


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.ADMIN, Permission.OPERATORS_MANAGE, True),
        (Role.PRODUCTION_MANAGER, Permission.REVOCATION_MANAGE, True),
        (Role.PRODUCTION_MANAGER, Permission.WORK_ORDERS_MANAGE, True),
        (Role.PRODUCTION_MANAGER, Permission.OPERATORS_MANAGE, False),
        (Role.PRODUCTION_MANAGER, Permission.AUDIT_VIEW, False),
        (Role.AUDITOR, Permission.AUDIT_VIEW, True),
        (Role.AUDITOR, Permission.REPORTS_VIEW, True),
        (Role.AUDITOR, Permission.REVOCATION_MANAGE, False),
        (Role.LINE_OPERATOR, Permission.DEVICES_VIEW, True),
        (Role.LINE_OPERATOR, Permission.REVOCATION_MANAGE, False),
        (Role.LINE_OPERATOR, Permission.WORK_ORDERS_VIEW, False),
    ],
    ids=lambda v: str(getattr(v, "value", v)),
)
def test_the_rights_table(role: Role, permission: Permission, allowed: bool) -> None:
    assert can(role, permission) is allowed


def test_the_auditor_changes_nothing_and_the_admin_holds_every_right() -> None:
    changes = {
        p for p in Permission if p.value.endswith((".manage", ".import", ".seal", ".generate"))
    }
    assert not RIGHTS[Role.AUDITOR] & changes
    assert RIGHTS[Role.ADMIN] == frozenset(Permission)


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "password_too_short"), ("x" * 300, "password_too_long"),
     ("bob-is-my-password", "password_weak"), ("aaaaaaaaaaaaaaaa", "password_weak")],
    ids=["short", "long", "contains-name", "few-distinct"],
)  # fmt: skip
def test_the_password_policy_refuses(password: str, code: str) -> None:
    with pytest.raises(InputError) as refused:
        passwords.check_policy(password, name="bob")
    assert refused.value.code == code


def test_only_an_argon2id_hash_is_kept_and_it_verifies() -> None:
    encoded = passwords.hash_password(GOOD)
    assert encoded.startswith("$argon2id$") and GOOD not in encoded
    assert passwords.verify_password(encoded, GOOD)
    assert not passwords.verify_password(encoded, GOOD + "!")
    assert not passwords.verify_password("not a hash", GOOD)


def test_a_line_operator_must_have_a_line_and_sees_only_it() -> None:
    with pytest.raises(InputError):
        Operator(name="lena", role=Role.LINE_OPERATOR, created_at=T0)
    lena = Operator(name="lena", role=Role.LINE_OPERATOR, created_at=T0, site="s1", line="l1")
    assert lena.sees_line("s1", "l1") and not lena.sees_line("s1", "l2")


def test_login_gives_a_session_stored_only_as_a_digest(world: World) -> None:
    service, store, _clock, audit = world
    principal, session_id = service.login("alice", GOOD, client="127.0.0.1")
    assert session_id not in store.sessions and tokens.digest(session_id) in store.sessions
    assert principal.csrf_token == tokens.csrf_token(session_id)
    assert service.session(session_id).operator.name == "alice"
    assert audit.events[-1].event == "operator.login" and audit.events[-1].outcome == "ok"


def test_repeated_bad_passwords_lock_the_account_even_for_the_good_one(world: World) -> None:
    service, _store, clock, audit = world
    for _ in range(service.policy.max_failures):
        with pytest.raises(OperatorUnauthenticated):
            service.login("alice", "wrong password!!")
    with pytest.raises(OperatorUnauthenticated) as locked:
        service.login("alice", GOOD)
    assert locked.value.code == "operator_locked"
    refused = [e for e in audit.events if e.event == "operator.login" and e.outcome == "refused"]
    assert len(refused) == service.policy.max_failures + 1
    clock.now += service.policy.lockout + timedelta(seconds=1)
    assert service.login("alice", GOOD)[0].operator.name == "alice"


def test_an_unknown_name_is_refused_like_a_bad_password(world: World) -> None:
    service = world[0]
    with pytest.raises(OperatorUnauthenticated) as refused:
        service.login("mallory", GOOD)
    assert refused.value.code == "operator_login_failed"


@pytest.mark.parametrize("expiry", ["idle", "absolute"])
def test_sessions_expire_when_idle_and_absolutely(world: World, expiry: str) -> None:
    service, store, clock, _audit = world
    _principal, session_id = service.login("alice", GOOD)
    if expiry == "idle":
        clock.now += service.policy.idle + timedelta(seconds=1)
    else:
        step = service.policy.idle - timedelta(minutes=1)
        while clock.now - T0 <= service.policy.absolute:
            clock.now += step
            if clock.now - T0 <= service.policy.absolute:
                service.session(session_id)  # kept busy: idle never trips
    with pytest.raises(OperatorUnauthenticated):
        service.session(session_id)
    assert not store.sessions


def test_logout_and_disabling_end_sessions_and_tokens(world: World) -> None:
    service, _store, _clock, _audit = world
    service.create("bob", Role.AUDITOR, "another fine passphrase")
    _p, session_id = service.login("alice", GOOD)
    service.logout(session_id)
    with pytest.raises(OperatorUnauthenticated):
        service.session(session_id)
    token = service.issue_token("bob")
    assert service.token(token).operator.role is Role.AUDITOR
    _p, bob_session = service.login("bob", "another fine passphrase")
    service.set_disabled("bob", True, actor="alice")
    with pytest.raises(OperatorUnauthenticated):
        service.token(token)
    with pytest.raises(OperatorUnauthenticated):
        service.session(bob_session)
    with pytest.raises(ConflictError):
        service.set_disabled("alice", True, actor="alice")


def test_no_operator_twice(world: World) -> None:
    with pytest.raises(ConflictError):
        world[0].create("alice", Role.AUDITOR, GOOD)
