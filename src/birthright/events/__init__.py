"""Signed webhook deliveries of fleet events (revocations, recalls, entitlement suspensions)
through a transactional outbox (ADR 0012)."""
