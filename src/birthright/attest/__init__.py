"""Attestation: evidence, verdicts and the verifier."""
