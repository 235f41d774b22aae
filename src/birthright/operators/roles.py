"""Roles and their rights: the one table the console and the operator API both consult."""

from __future__ import annotations

from enum import StrEnum

from birthright.errors import InputError


class Role(StrEnum):
    ADMIN = "admin"
    PRODUCTION_MANAGER = "production_manager"
    AUDITOR = "auditor"
    LINE_OPERATOR = "line_operator"

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls(text.strip().lower().replace("-", "_").replace(" ", "_"))
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise InputError(f"unknown role {text!r} (one of {known})", code="bad_role") from None


class Permission(StrEnum):
    """What an operator may do; each console page and operator endpoint names one."""

    OVERVIEW_VIEW = "overview.view"
    DEVICES_VIEW = "devices.view"
    STATIONS_VIEW = "stations.view"
    WORK_ORDERS_VIEW = "work_orders.view"
    WORK_ORDERS_MANAGE = "work_orders.manage"
    REPORTS_VIEW = "reports.view"
    REPORTS_GENERATE = "reports.generate"
    SHIPMENTS_IMPORT = "shipments.import"
    REVOCATION_MANAGE = "revocation.manage"
    PRODUCTS_VIEW = "products.view"
    ENTITLEMENTS_VIEW = "entitlements.view"
    ENTITLEMENTS_MANAGE = "entitlements.manage"
    SEAL = "devices.seal"
    AUDIT_VIEW = "audit.view"
    OPERATORS_MANAGE = "operators.manage"
    #: Webhook subscriptions to fleet events: they make the service call out to a URL.
    EVENTS_VIEW = "events.view"
    EVENTS_MANAGE = "events.manage"


P = Permission
_READ_ALL = frozenset(
    {
        P.OVERVIEW_VIEW,
        P.DEVICES_VIEW,
        P.STATIONS_VIEW,
        P.WORK_ORDERS_VIEW,
        P.REPORTS_VIEW,
        P.PRODUCTS_VIEW,
        P.ENTITLEMENTS_VIEW,
        P.EVENTS_VIEW,
    }
)

#: Role -> permissions. Admin: everything. Production manager: runs the day (work orders,
#: shipments, revocation and recall, reports). Auditor: reads everything, the audit log
#: included, changes nothing. Line operator: the overview, device search and its own line.
RIGHTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.PRODUCTION_MANAGER: _READ_ALL
    | {
        P.WORK_ORDERS_MANAGE,
        P.REPORTS_GENERATE,
        P.SHIPMENTS_IMPORT,
        P.REVOCATION_MANAGE,
        P.ENTITLEMENTS_MANAGE,
    },
    Role.AUDITOR: _READ_ALL | {P.AUDIT_VIEW},
    Role.LINE_OPERATOR: frozenset({P.OVERVIEW_VIEW, P.DEVICES_VIEW, P.STATIONS_VIEW}),
}

#: Roles whose view of stations and work orders is narrowed to one assigned line.
LINE_SCOPED = frozenset({Role.LINE_OPERATOR})


def can(role: Role, permission: Permission) -> bool:
    return permission in RIGHTS[role]


def describe() -> list[tuple[Role, list[str]]]:
    """The rights table, for the CLI and the documentation."""
    return [(role, sorted(p.value for p in RIGHTS[role])) for role in Role]
