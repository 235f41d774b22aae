"""Revocation of single units, targeted recalls, and what CRL/OCSP publish about them."""
