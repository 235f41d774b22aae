"""Operator accounts, roles and their rights, passwords, sessions and API tokens.

The domain of who may do what from the console and the operator API; free of FastAPI and
SQLAlchemy (the store is a port, the HTTP guard lives in ``server/operator_auth.py``).
"""
