"""Operator use cases: accounts, login with lockout, sessions, API tokens. All audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from birthright.audit.events import AuditEvent
from birthright.errors import ConflictError, NotFoundError
from birthright.operators import passwords, tokens
from birthright.operators.model import (
    Credentials,
    Operator,
    OperatorUnauthenticated,
    Principal,
    SessionPolicy,
    SessionRecord,
)
from birthright.operators.roles import Role

SYSTEM = "system"  # the actor of changes made on the server machine's command line


class OperatorStore(Protocol):
    def add(self, operator: Operator, password_hash: str) -> None: ...
    def credentials(self, name: str) -> Credentials | None: ...
    def list(self) -> list[Operator]: ...
    def set_password_hash(self, name: str, password_hash: str) -> None: ...
    def login_failed(self, name: str, locked_until: datetime | None) -> None: ...
    def login_succeeded(self, name: str) -> None: ...
    def set_disabled(self, name: str, disabled: bool) -> None: ...
    def add_session(self, digest: str, name: str, now: datetime) -> None: ...
    def session(self, digest: str) -> SessionRecord | None: ...
    def touch_session(self, digest: str, now: datetime) -> None: ...
    def end_session(self, digest: str) -> None: ...
    def end_sessions_of(self, name: str) -> None: ...
    def add_token(self, digest: str, name: str, label: str, now: datetime) -> None: ...
    def token_owner(self, digest: str) -> str | None: ...


class AuditPort(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


class OperatorService:
    def __init__(
        self,
        *,
        store: OperatorStore,
        audit: AuditPort,
        clock: Callable[[], datetime],
        policy: SessionPolicy | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self.policy = policy or SessionPolicy()

    # -- accounts ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        role: Role,
        password: str,
        *,
        actor: str = SYSTEM,
        site: str | None = None,
        line: str | None = None,
    ) -> Operator:
        now = self._clock()
        operator = Operator(name=name, role=role, created_at=now, site=site, line=line)
        passwords.check_policy(password, name=name)
        if self._store.credentials(name) is not None:
            raise ConflictError(f"operator {name!r} exists already", code="operator_exists")
        self._store.add(operator, passwords.hash_password(password))
        self._audit_ok("operator.created", actor, name=name, role=role.value, line=line)
        return operator

    def get(self, name: str) -> Operator:
        found = self._store.credentials(name)
        if found is None:
            raise NotFoundError(f"no operator named {name!r}", code="operator_unknown")
        return found.operator

    def list(self) -> list[Operator]:
        return self._store.list()

    def set_disabled(self, name: str, disabled: bool, *, actor: str = SYSTEM) -> Operator:
        self.get(name)
        if disabled and name == actor:
            raise ConflictError("an operator cannot disable itself", code="operator_self")
        self._store.set_disabled(name, disabled)
        if disabled:
            self._store.end_sessions_of(name)
        self._audit_ok("operator.disabled" if disabled else "operator.enabled", actor, name=name)
        return self.get(name)

    def set_password(self, name: str, password: str, *, actor: str = SYSTEM) -> None:
        self.get(name)
        passwords.check_policy(password, name=name)
        self._store.set_password_hash(name, passwords.hash_password(password))
        self._store.end_sessions_of(name)
        self._audit_ok("operator.password_set", actor, name=name)

    # -- login, sessions -----------------------------------------------------------------

    def login(self, name: str, password: str, *, client: str = "") -> tuple[Principal, str]:
        """A new session for good credentials: (principal, session id). Each outcome audited;
        ``max_failures`` bad passwords in a row lock the account for ``lockout``."""
        now = self._clock()
        found = self._store.credentials(name)
        if found is None:
            passwords.verify_password(passwords.dummy_hash(), password)  # same time either way
            self._refuse("operator.login", "operator_login_failed", name=name, client=client)
        assert found is not None  # for the type checker: _refuse raises
        if found.locked_until is not None and found.locked_until > now:
            self._refuse("operator.login", "operator_locked", name=name, client=client)
        if not passwords.verify_password(found.password_hash, password):
            failures = found.failed_logins + 1
            lock = now + self.policy.lockout if failures >= self.policy.max_failures else None
            self._store.login_failed(name, lock)
            self._refuse(
                "operator.login",
                "operator_locked" if lock else "operator_login_failed",
                name=name,
                client=client,
                failures=failures,
            )
        if found.operator.disabled:
            self._refuse("operator.login", "operator_disabled", name=name, client=client)
        self._store.login_succeeded(name)
        if passwords.needs_rehash(found.password_hash):
            self._store.set_password_hash(name, passwords.hash_password(password))
        session_id = tokens.new_session_id()
        self._store.add_session(tokens.digest(session_id), name, now)
        self._audit_ok("operator.login", name, client=client)
        principal = Principal(found.operator, "session", tokens.csrf_token(session_id))
        return principal, session_id

    def session(self, session_id: str) -> Principal:
        """The principal of a live session; idle or absolute expiry ends it."""
        now = self._clock()
        key = tokens.digest(session_id)
        record = self._store.session(key)
        if record is None:
            raise OperatorUnauthenticated("no such session: log in")
        expired = (
            now - record.last_seen_at > self.policy.idle
            or now - record.created_at > self.policy.absolute
        )
        operator = self._live(record.operator_name)
        if expired or operator is None:
            self._store.end_session(key)
            raise OperatorUnauthenticated("the session has expired: log in again")
        self._store.touch_session(key, now)
        return Principal(operator, "session", tokens.csrf_token(session_id))

    def logout(self, session_id: str) -> None:
        key = tokens.digest(session_id)
        record = self._store.session(key)
        self._store.end_session(key)
        if record is not None:
            self._audit_ok("operator.logout", record.operator_name)

    # -- API tokens ----------------------------------------------------------------------

    def issue_token(self, name: str, *, label: str = "api", actor: str = SYSTEM) -> str:
        """A new bearer token for scripts acting as ``name``; shown once, stored hashed."""
        self.get(name)
        token = tokens.new_api_token()
        self._store.add_token(tokens.digest(token), name, label, self._clock())
        self._audit_ok("operator.token_issued", actor, name=name, label=label)
        return token

    def token(self, token: str) -> Principal:
        owner = self._store.token_owner(tokens.digest(token))
        operator = self._live(owner) if owner is not None else None
        if operator is None:
            raise OperatorUnauthenticated("the API token is unknown or its operator disabled")
        return Principal(operator, "token")

    # -- helpers -------------------------------------------------------------------------

    def _live(self, name: str) -> Operator | None:
        found = self._store.credentials(name)
        if found is None or found.operator.disabled:
            return None
        return found.operator

    def audit_action(
        self, principal: Principal, action: str, outcome: str = "ok", **detail: object
    ) -> None:
        """Record one operator action (console or API) in the audit chain."""
        self._audit.record(
            AuditEvent(
                event="operator.action",
                outcome=outcome,
                code=None if outcome == "ok" else "operator_forbidden",
                detail={
                    "operator": principal.operator.name,
                    "role": principal.operator.role.value,
                    "via": principal.via,
                    "action": action,
                    **detail,
                },
            ),
            self._clock(),
        )

    def audit_refusal(self, code: str, **detail: object) -> None:
        self._audit.record(
            AuditEvent(event="operator.request", outcome="refused", code=code, detail=dict(detail)),
            self._clock(),
        )

    def _audit_ok(self, event: str, actor: str, **detail: object) -> None:
        self._audit.record(
            AuditEvent(event=event, outcome="ok", detail={"actor": actor, **detail}),
            self._clock(),
        )

    def _refuse(self, event: str, code: str, **detail: object) -> None:
        self._audit.record(
            AuditEvent(event=event, outcome="refused", code=code, detail=dict(detail)),
            self._clock(),
        )
        message = (
            "the account is locked after repeated failures: try again later"
            if code == "operator_locked"
            else "unknown operator or wrong password"
        )
        raise OperatorUnauthenticated(message, code=code)
