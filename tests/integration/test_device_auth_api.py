"""Device authentication over real HTTP: a challenge-bound token signed by the device key.

Every refusal has its stable code, is audited, and changes nothing else (the nonce of a refused
token is not even burnt). Software keys stand in for chips in the table; SoftHSM2 signs below.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from birthright.db.audit import list_events
from birthright.db.engine import make_sessionmaker
from birthright.device.auth import authenticate
from birthright.deviceauth.token import build_token
from birthright.se.sim import DeviceSet, create_devices
from birthright.station.client import BackendClient, BackendRefused, BackendUntrusting
from birthright.station.provision import Station
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_attestation_api import Unit, evidence_body, failed_ids, make_unit
from tests.integration.test_attestation_api import api as api

AUD = "birthright"


def signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


def nonce_for(api: httpx.Client, serial: str) -> str:
    r = api.post("/v1/device-auth/challenges", json={"serial": serial})
    assert r.status_code == 201, r.text
    assert r.json()["audience"] == AUD
    return str(r.json()["nonce"])


def token_body(
    unit: Unit,
    nonce: str,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    audience: str = AUD,
    now: datetime | None = None,
    lifetime: int = 120,
    serial: str | None = None,
    chain: list[str] | None = None,
) -> dict[str, object]:
    token = build_token(
        nonce=nonce,
        serial=serial or unit.serial,
        audience=audience,
        now=now or datetime.now(UTC),
        sign=signer(key or unit.key),
        lifetime=lifetime,
    )
    return {"token": base64.b64encode(token).decode(), "chain": chain or unit.chain}


def audit_rows(served: ServedBackend) -> list[tuple[str, str | None, str | None]]:
    events = list_events(make_sessionmaker(served.backend.engine), event="device.auth", limit=50)
    return [(e.outcome, e.code, e.serial) for e in events]


def table_counts(served: ServedBackend) -> dict[str, int]:
    tables = ("devices", "nonces", "audit_events", "revocations")
    with served.backend.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}  # noqa: S608


def test_a_fresh_token_authenticates_the_device(api: httpx.Client, served: ServedBackend) -> None:
    unit = make_unit(api, "CHIP-A")
    r = api.post("/v1/device-auth", json=token_body(unit, nonce_for(api, unit.serial)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["serial"], body["audience"]) == (unit.serial, AUD)
    assert datetime.fromisoformat(body["expires_at"]) <= datetime.now(UTC) + timedelta(minutes=5)
    assert audit_rows(served) == [("ok", None, unit.serial)]


def foreign_chain(unit: Unit) -> list[str]:
    """The unit's own key and serial, certified by another CA (a look-alike factory root)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Look-alike Factory Root")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, unit.serial)]))
        .issuer_name(ca_name)
        .public_key(unit.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return [c.public_bytes(Encoding.PEM).decode() for c in (leaf, ca)]


Case = Callable[[httpx.Client, ServedBackend, Unit, Unit], dict[str, object]]


def _replayed(api: httpx.Client, served: ServedBackend, a: Unit, b: Unit) -> dict[str, object]:
    body = token_body(a, nonce_for(api, a.serial))
    assert api.post("/v1/device-auth", json=body).status_code == 200
    return body


def _expired_token(api: httpx.Client, served: ServedBackend, a: Unit, b: Unit) -> dict[str, object]:
    past = datetime.now(UTC) - timedelta(minutes=10)
    return token_body(a, nonce_for(api, a.serial), now=past)


def _expired_nonce(api: httpx.Client, served: ServedBackend, a: Unit, b: Unit) -> dict[str, object]:
    nonce = nonce_for(api, a.serial)
    with served.backend.engine.begin() as conn:
        conn.execute(
            text("UPDATE nonces SET expires_at = :t WHERE nonce = :n"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "n": nonce},
        )
    return token_body(a, nonce)


def _attestation_nonce(
    api: httpx.Client, served: ServedBackend, a: Unit, b: Unit
) -> dict[str, object]:
    r = api.post("/v1/attestations/challenges", json={"serial": a.serial})
    return token_body(a, r.json()["nonce"])


CASES: dict[str, tuple[Case, int, str]] = {
    "replayed": (_replayed, 401, "device_auth_replayed"),
    "expired-token": (_expired_token, 401, "device_auth_expired"),
    "expired-nonce": (_expired_nonce, 401, "device_auth_expired"),
    "future-iat": (
        lambda api, s, a, b: token_body(
            a, nonce_for(api, a.serial), now=datetime.now(UTC) + timedelta(minutes=3)
        ),
        401,
        "device_auth_expired",
    ),
    "other-audience": (
        lambda api, s, a, b: token_body(a, nonce_for(api, a.serial), audience="someone-else"),
        401,
        "device_auth_audience",
    ),
    "another-ca": (
        lambda api, s, a, b: token_body(a, nonce_for(api, a.serial), chain=foreign_chain(a)),
        401,
        "device_untrusted",
    ),
    "attestation-nonce": (_attestation_nonce, 401, "device_auth_nonce_unknown"),
    "never-issued-nonce": (
        lambda api, s, a, b: token_body(a, "da.never-issued"),
        401,
        "device_auth_nonce_unknown",
    ),
    "another-devices-nonce": (
        lambda api, s, a, b: token_body(a, nonce_for(api, b.serial)),
        401,
        "device_auth_nonce_unknown",
    ),
    "another-key": (
        lambda api, s, a, b: token_body(
            a, nonce_for(api, a.serial), key=ec.generate_private_key(ec.SECP256R1())
        ),
        401,
        "device_auth_signature_invalid",
    ),
    "stolen-label-other-chain": (
        # b's owner read a's serial off its label and signs with b's key and b's certificate
        lambda api, s, a, b: token_body(b, nonce_for(api, a.serial), serial=a.serial),
        401,
        "device_untrusted",
    ),
    "lifetime-over-5-min": (
        lambda api, s, a, b: token_body(a, nonce_for(api, a.serial), lifetime=301),
        400,
        "device_auth_malformed",
    ),
    "garbage": (
        lambda api, s, a, b: {"token": base64.b64encode(b"\xd2garbage").decode(), "chain": a.chain},
        400,
        "device_auth_malformed",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_refusal_has_its_code_is_audited_and_grants_nothing(
    api: httpx.Client, served: ServedBackend, case: str
) -> None:
    make, status, code = CASES[case]
    a, b = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    body = make(api, served, a, b)
    before = table_counts(served)
    r = api.post("/v1/device-auth", json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    after = table_counts(served)
    assert after == {**before, "audit_events": before["audit_events"] + 1}
    assert audit_rows(served)[0][:2] == ("refused", code)


def test_a_refused_token_does_not_burn_its_nonce(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    nonce = nonce_for(api, unit.serial)
    intruder = ec.generate_private_key(ec.SECP256R1())
    assert (
        api.post("/v1/device-auth", json=token_body(unit, nonce, key=intruder)).status_code == 401
    )
    assert api.post("/v1/device-auth", json=token_body(unit, nonce)).status_code == 200


def test_a_revoked_device_is_refused_at_once_and_the_others_pass(
    api: httpx.Client, served: ServedBackend
) -> None:
    bad, good = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    bad_body = token_body(bad, nonce_for(api, bad.serial))  # signed while still active
    r = api.post("/v1/revocations", json={"serial": bad.serial, "reason": "keyCompromise"})
    assert r.status_code == 201, r.text
    r = api.post("/v1/device-auth", json=bad_body)
    assert (r.status_code, r.json()["code"]) == (403, "device_revoked")
    r = api.post("/v1/device-auth", json=token_body(good, nonce_for(api, good.serial)))
    assert r.status_code == 200
    assert ("refused", "device_revoked", bad.serial) in audit_rows(served)


def test_an_unknown_serial_gets_no_challenge(api: httpx.Client) -> None:
    r = api.post("/v1/device-auth/challenges", json={"serial": "NOPE"})
    assert (r.status_code, r.json()["code"]) == (404, "device_unknown")


# -- a real chip: SoftHSM2 signs the token through the device agent ---------------------------


@pytest.fixture
def backend(served: ServedBackend) -> Iterator[BackendClient]:
    seed_line(served, station_id="st-da", work_order_id="WO-DA")
    with BackendClient(served.url) as client:
        yield client


def test_a_softhsm2_chip_authenticates_then_is_refused_once_revoked(
    served: ServedBackend, backend: BackendClient, sim_device_set: DeviceSet
) -> None:
    [made] = create_devices(sim_device_set.directory, 1, pin=sim_device_set.pin)
    with sim_device_set.open(made.label) as se:
        outcome = Station(station_id="st-da", work_order_id="WO-DA", backend=backend).provision(
            se, label=made.label
        )
        assert outcome.ok, outcome.reason
        session = authenticate(se, backend, now=datetime.now(UTC))
        assert session["serial"] == outcome.serial
        httpx.post(
            f"{served.url}/v1/revocations",
            json={"serial": outcome.serial, "reason": "keyCompromise"},
            headers=served.auth,
        ).raise_for_status()
        with pytest.raises(BackendUntrusting) as refused:
            authenticate(se, backend, now=datetime.now(UTC))
        assert refused.value.code == "device_revoked"


def test_a_softhsm2_token_older_than_its_lifetime_is_refused(
    backend: BackendClient, sim_device_set: DeviceSet
) -> None:
    [made] = create_devices(sim_device_set.directory, 1, pin=sim_device_set.pin)
    with sim_device_set.open(made.label) as se:
        assert (
            Station(station_id="st-da", work_order_id="WO-DA", backend=backend)
            .provision(se, label=made.label)
            .ok
        )
        from birthright.device.auth import chain_pem, fresh_token

        token = fresh_token(se, backend, now=datetime.now(UTC) - timedelta(minutes=3))
        with pytest.raises(BackendRefused) as refused:
            backend.device_authenticate(token=token, chain_pem=chain_pem(se))
        assert refused.value.code == "device_auth_expired"


def test_attestation_refuses_a_device_auth_nonce_and_leaves_it_unspent(
    api: httpx.Client,
) -> None:
    unit = make_unit(api, "CHIP-PURPOSE")
    nonce = nonce_for(api, unit.serial)
    r = api.post("/v1/attestations", json=evidence_body(unit, nonce))
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "fail"
    assert "nonce.wrong_purpose" in failed_ids(r.json())
    # the nonce still serves the purpose it was issued for
    r = api.post("/v1/device-auth", json=token_body(unit, nonce))
    assert r.status_code == 200, r.text
