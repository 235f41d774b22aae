"""Chain verification against the factory root. Pure: certificates and ``now`` in.

Uses ``cryptography``'s RFC 5280 / CA-B-Forum-style path builder (a client verifier with the
default extension policies): it checks signatures, validity at ``now``, CA flags, key usage and
path length. Device certificates carry no EKU, which the client verifier accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from birthright.errors import InputError, TrustError

#: Device → issuing CA → root.
MAX_CHAIN_DEPTH = 2
#: Certificates a device may present (leaf first).
MAX_CHAIN_CERTS = 4


class ChainMalformed(InputError):
    code = "chain_malformed"


def parse_chain(chain: Sequence[bytes]) -> list[x509.Certificate]:
    """A presented chain (each certificate PEM or DER, leaf first), parsed; or ChainMalformed."""
    if not 1 <= len(chain) <= MAX_CHAIN_CERTS:
        raise ChainMalformed(f"the chain must hold 1 to {MAX_CHAIN_CERTS} certificates")
    certs = []
    for item in chain:
        try:
            if item.lstrip().startswith(b"-----BEGIN"):
                certs.append(x509.load_pem_x509_certificate(item))
            else:
                certs.append(x509.load_der_x509_certificate(item))
        except ValueError as e:
            raise ChainMalformed("a certificate in the chain does not parse") from e
    return certs


class ChainUntrusted(TrustError):
    code = "chain_untrusted"


def verify_device_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> None:
    """Raise ``ChainUntrusted`` unless ``leaf`` chains through ``intermediates`` to a root."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, list(intermediates))
    except (VerificationError, ValueError) as e:
        raise ChainUntrusted(f"the certificate does not chain to the factory root: {e}") from e
