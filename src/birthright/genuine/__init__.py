"""Proof that a device's identity key lives in a genuine secure element.

Pure domain: untrusted proof objects and trusted roots in, a ``ProvenKey`` or an error out.
Each kind of proof (``pkcs11-vendor``, later ``tpm``) is one ``SeProofVerifier`` registered in
an ``SeProofVerifiers``; ``appraise`` applies a product's policy.
"""

from birthright.genuine.model import (
    GENUINE_SE_POLICY_OID,
    Appraisal,
    ProvenKey,
    SeNotGenuine,
    SeProofIndeterminate,
    SeProofMalformed,
    SeProofVerifier,
    SeProofVerifiers,
    appraise,
)

__all__ = [
    "GENUINE_SE_POLICY_OID",
    "Appraisal",
    "ProvenKey",
    "SeNotGenuine",
    "SeProofIndeterminate",
    "SeProofMalformed",
    "SeProofVerifier",
    "SeProofVerifiers",
    "appraise",
]
