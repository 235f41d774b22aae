"""Demo step: a unit authenticates with its chip key and claims a warranty; a revoked unit is
refused."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.device.auth import authenticate
from birthright.deviceauth.token import build_token
from birthright.errors import BirthrightError
from birthright.se.base import SecureElement
from birthright.se.sim import DeviceSet
from birthright.station.client import BackendClient

WARRANTY = "warranty-2y"


@dataclass(frozen=True)
class FleetAuthOutcome:
    authenticated: str  # the serial that authenticated, "" if none could
    claim: str  # "<plan> <status>" or the refusal code
    stolen_label: str  # what a claim by someone without the chip key got
    revoked: str  # the revoked unit's refusal code ("" if it was let in)


def authenticate_and_claim(
    device_set: DeviceSet, backend: BackendClient, *, revoked_label: str
) -> FleetAuthOutcome:
    """The first live unit authenticates and claims a warranty; someone who read its serial
    (and its public certificate) but holds no chip key tries to claim too; the revoked unit
    tries to authenticate."""
    now = datetime.now(UTC)
    serial = claim = stolen = ""
    for label in (d.label for d in device_set.devices() if d.label != revoked_label):
        with device_set.open(label) as se:
            try:
                serial = str(authenticate(se, backend, now=now)["serial"])
            except BirthrightError:
                continue  # on hold, revoked or never provisioned: try the next unit
            claim = _claim(backend, se, serial, now)
            stolen = _claim(backend, _LabelThief(se), serial, now, owner="acct:mallory")
        break
    with device_set.open(revoked_label) as se:
        try:
            authenticate(se, backend, now=now)
            revoked = ""
        except BirthrightError as e:
            revoked = e.code
    return FleetAuthOutcome(serial, claim, stolen, revoked)


class _LabelThief:
    """Knows the unit's serial and public certificate chain, not its key: signs in software."""

    def __init__(self, victim: SecureElement) -> None:
        self._chain = victim.read_chain()
        self._key = ec.generate_private_key(ec.SECP256R1())

    def read_chain(self) -> list[x509.Certificate]:
        return self._chain

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def _claim(
    backend: BackendClient,
    se: SecureElement | _LabelThief,
    serial: str,
    now: datetime,
    *,
    owner: str = "acct:alice",
) -> str:
    try:
        nonce, audience = backend.device_auth_challenge(serial)
        token = build_token(nonce=nonce, serial=serial, audience=audience, now=now, sign=se.sign)
        made = backend.post_json(
            "/v1/entitlements/claims",
            {
                "serial": serial,
                "plan": WARRANTY,
                "kind": "warranty",
                "starts_on": now.date().isoformat(),
                "ends_on": (now + timedelta(days=730)).date().isoformat(),
                "owner": owner,
                "token": base64.b64encode(token).decode(),
                "chain": [c.public_bytes(Encoding.PEM).decode() for c in se.read_chain()],
            },
        )
    except BirthrightError as e:
        return e.code
    return f"{made['plan']} {made['status']}"
