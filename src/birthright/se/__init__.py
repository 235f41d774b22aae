"""Secure-element drivers behind one small interface."""

from birthright.se.base import SecureElement
from birthright.se.signer import ExternalKeySigner

__all__ = ["ExternalKeySigner", "SecureElement"]
