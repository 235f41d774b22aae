"""Security events and the hash-chained audit log."""

from birthright.audit.events import AuditEvent

__all__ = ["AuditEvent"]
