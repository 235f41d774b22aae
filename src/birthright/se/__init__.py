"""Secure-element drivers behind one small interface."""

from birthright.se.base import OffersSeProof, SecureElement
from birthright.se.signer import ExternalKeySigner

__all__ = ["ExternalKeySigner", "OffersSeProof", "SecureElement"]
