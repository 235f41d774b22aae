"""Reconciliation: what was ordered, minted, enrolled and shipped, and where they disagree."""
