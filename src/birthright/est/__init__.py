"""EST (RFC 7030): standard enrollment clients over the station's mutual TLS (ADR 0014)."""
