"""Readiness: may this replica take traffic? Database reachable, schema at head, CA key usable.

Each check is a callable that raises when its part is not ready; :func:`check_all` turns
the outcomes into :class:`Check` values with stable codes. A load balancer takes a replica
out of rotation while ``/readyz`` answers 503, and puts it back when it answers 200.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.observability.model import Check

log = logging.getLogger(__name__)

Probe = Callable[[], None]
Network = IPv4Network | IPv6Network

LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


class NotReady(Exception):
    """A part is not ready: ``code`` is stable, ``message`` is for the operator."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Readiness:
    """Named probes, run in order; the first part that fails names the answer's code."""

    probes: tuple[tuple[str, Probe], ...] = ()

    def check_all(self) -> list[Check]:
        results = []
        for name, probe in self.probes:
            try:
                probe()
            except NotReady as e:
                results.append(Check(name, False, e.code, e.message))
            except Exception as e:  # a probe failing in any way means: not ready
                log.warning("readiness check %s failed: %s", name, type(e).__name__)
                results.append(Check(name, False, f"{name}_unavailable", type(e).__name__))
            else:
                results.append(Check(name, True))
        return results


@dataclass(frozen=True)
class Observability:
    """What the operations endpoints need: who may scrape, and how to tell readiness."""

    metrics_allow: tuple[Network, ...] = LOOPBACK
    #: Seconds a scrape reuses the database-backed gauges.
    metrics_cache_seconds: float = 5.0
    readiness: Readiness = field(default_factory=Readiness)


def parse_networks(values: list[str]) -> tuple[Network, ...]:
    return tuple(ip_network(v, strict=False) for v in values)


def schema_probe(current: Callable[[], str | None], head: str) -> Probe:
    def probe() -> None:
        at = current()
        if at != head:
            raise NotReady(
                "schema_not_at_head",
                f"the database schema is at {at or 'nothing'}, this code needs {head}: "
                "run `birthright db upgrade`",
            )

    return probe


def ca_key_probe(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Probe:
    """Sign a random probe with the issuing key (file or HSM) and verify it with the cert."""

    def probe() -> None:
        data = os.urandom(32)
        try:
            signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
            public = cert.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise NotReady("ca_key_unusable", "the issuing certificate is not an EC key")
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as e:
            raise NotReady("ca_key_unusable", "the issuing key does not match its cert") from e
        except NotReady:
            raise
        except Exception as e:
            raise NotReady(
                "ca_key_unusable", f"the issuing key cannot sign: {type(e).__name__}"
            ) from e

    return probe
