"""Persistence: SQLAlchemy models, repositories and migrations. Nothing outside imports models."""
