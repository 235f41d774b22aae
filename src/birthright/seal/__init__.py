"""Per-device sealing: payloads only one device's secure element can open (ADR 0010)."""
