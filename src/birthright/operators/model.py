"""Operators, sessions and API tokens as the domain sees them, and the errors of the guard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from birthright.errors import BirthrightError, InputError
from birthright.operators.roles import LINE_SCOPED, Permission, Role, can

NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
LINE = re.compile(r"^[A-Za-z0-9._ -]{1,64}$")


class OperatorUnauthenticated(BirthrightError):
    """No valid session or API token came with the request."""

    code = "operator_unauthenticated"
    http_status = 401


class OperatorForbidden(BirthrightError):
    """The operator is known but the role lacks the right (or the CSRF token is missing)."""

    code = "operator_forbidden"
    http_status = 403


@dataclass(frozen=True)
class Operator:
    name: str
    role: Role
    created_at: datetime
    disabled: bool = False
    #: For line-scoped roles: the one line (site, line) this operator sees.
    site: str | None = None
    line: str | None = None

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise InputError(
                f"not an operator name: {self.name!r} (2-32 of a-z 0-9 . _ -, a letter first)",
                code="bad_operator_name",
            )
        if self.role in LINE_SCOPED and (self.site is None or self.line is None):
            raise InputError(
                f"a {self.role.value} is assigned to one line: give its site and line",
                code="operator_line_required",
            )
        for part in (self.site, self.line):
            if part is not None and not LINE.match(part):
                raise InputError(f"not a site or line name: {part!r}", code="bad_line")

    def can(self, permission: Permission) -> bool:
        return not self.disabled and can(self.role, permission)

    def sees_line(self, site: str, line: str) -> bool:
        """Whether this operator's view includes the stations of ``site``/``line``."""
        if self.role not in LINE_SCOPED:
            return True
        return (self.site, self.line) == (site, line)


@dataclass(frozen=True)
class Credentials:
    """An operator's stored secret half and its lockout state."""

    operator: Operator
    password_hash: str
    failed_logins: int
    locked_until: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    operator_name: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class Principal:
    """Who is calling, and how: a console session (with its CSRF token) or an API token."""

    operator: Operator
    via: str  # "session" | "token"
    csrf_token: str | None = None


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
