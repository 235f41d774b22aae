"""Operational (LDevID-style) certificates traded for a fresh factory-identity proof."""
