"""The operator console: server-rendered pages (Jinja2, inline SVG charts, no script build)
over the same use cases and the same rights table as the operator API (ADR 0013)."""
