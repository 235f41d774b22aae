"""The offline part of device authentication: times, audience, chain and signature.

Shared by our service and by relying services (``birthright.relying``): no database, no network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.deviceauth.token import DeviceAuthToken
from birthright.errors import TrustError

#: How far a device clock may run ahead of ours.
CLOCK_SKEW = timedelta(seconds=30)

#: Raises ``TrustError`` unless ``leaf`` chains through ``intermediates`` to a trusted root.
ChainVerifier = Callable[[x509.Certificate, Sequence[x509.Certificate], datetime], None]


class DeviceAuthRefused(TrustError):
    """Authentication refused; ``code`` says why (``device_auth_expired``, ...)."""

    code = "device_auth_refused"
    http_status = 401


class DeviceRevoked(DeviceAuthRefused):
    code = "device_revoked"
    http_status = 403


def check_offline(
    token: DeviceAuthToken,
    certs: Sequence[x509.Certificate],
    *,
    audience: str,
    verify_chain: ChainVerifier,
    now: datetime,
) -> None:
    """Raise ``DeviceAuthRefused`` unless the token is current, for us, and signed by a device
    certificate of our CA whose serialNumber is the token's serial."""
    claims = token.claims
    if now >= claims.expires_at:
        raise DeviceAuthRefused("the token has expired", code="device_auth_expired")
    if claims.issued_at > now + CLOCK_SKEW:
        raise DeviceAuthRefused("the token is issued in the future", code="device_auth_expired")
    if claims.audience != audience:
        raise DeviceAuthRefused(
            "the token is meant for another service", code="device_auth_audience"
        )
    leaf, intermediates = certs[0], certs[1:]
    try:
        verify_chain(leaf, intermediates, now)
    except TrustError as e:
        raise DeviceAuthRefused(
            f"the certificate is not one of our devices: {e.message}", code="device_untrusted"
        ) from e
    if _subject_serial(leaf) != claims.serial:
        raise DeviceAuthRefused(
            "the certificate belongs to another serial", code="device_untrusted"
        )
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DeviceAuthRefused("the device key is not EC P-256", code="device_untrusted")
    if not token.sign1.verify(key):
        raise DeviceAuthRefused(
            "the signature does not verify", code="device_auth_signature_invalid"
        )


def _subject_serial(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(x509.oid.NameOID.SERIAL_NUMBER)
    return str(values[0].value) if len(values) == 1 else None
