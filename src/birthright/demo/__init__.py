"""Pieces of the demo run that are more than a call into a use case."""
