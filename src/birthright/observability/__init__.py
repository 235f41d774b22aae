"""Observability: Prometheus metrics, request ids and access logs, health and readiness."""
