"""Demo: the scripted steps act as an operator through an API token, as scripts should."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from birthright.db.audit_sink import SqlAuditSink
from birthright.db.operators import SqlOperatorStore
from birthright.operators.roles import Role
from birthright.operators.service import OperatorService

DEMO_OPERATOR = "demo-script"


def demo_operator_token(sessions: sessionmaker[Session]) -> str:
    """An admin account for the demo's own scripted calls, with a random password nobody is
    told (no default password: people log in with an admin made by ``birthright admin
    create``), and one API token for the script."""
    service = OperatorService(
        store=SqlOperatorStore(sessions),
        audit=SqlAuditSink(sessions),
        clock=lambda: datetime.now(UTC),
    )
    service.create(DEMO_OPERATOR, Role.ADMIN, secrets.token_urlsafe(24))
    return service.issue_token(DEMO_OPERATOR, label="demo")
