"""`birthright demo`."""

from __future__ import annotations


def demo() -> None:
    """Run the demo (being built)."""
