"""Station request signing and its verification, against in-memory fakes of our own ports.

The SQL ledger, SoftHSM2 keys and real TLS are in tests/integration/test_station_identity.py.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from birthright.ca.hierarchy import build_issuing, build_root
from birthright.ca.station import (
    ClientCertUntrusted,
    StationCa,
    build_station_ca,
    check_station_id,
    verify_station_cert,
)
from birthright.errors import ConfigError, InputError, TransientError, TrustError
from birthright.server.station_auth import (
    CounterVerdict,
    SignedRequest,
    StationRecord,
    StationRequestVerifier,
)
from birthright.server.tls import request_url
from birthright.station.signing import COUNTER_BLOCK, CounterStore, StationAuth
from birthright.types import StationId

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
URL = "https://backend.example:8443/v1/enrollments"
ORG = "Birthright Test"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _csr(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


@dataclass
class Pki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    ca: StationCa


def _make_pki() -> Pki:
    root_key, ca_key = _key(), _key()
    root = build_root(organization=ORG, root_key=root_key, now=NOW - timedelta(days=1))
    ca_cert = build_station_ca(
        organization=ORG,
        ca_public_key=ca_key.public_key(),
        root_cert=root,
        root_key=root_key,
        now=NOW - timedelta(days=1),
    )
    station_ca = StationCa(root_cert=root, ca_cert=ca_cert, ca_key=ca_key, organization=ORG)
    return Pki(root_key, root, station_ca)


_PKI = _make_pki()


@pytest.fixture
def pki() -> Pki:
    return _PKI


@dataclass
class Station:
    station_id: StationId
    key: ec.EllipticCurvePrivateKey
    tls_der: bytes


def _station(pki: Pki, station_id: str) -> Station:
    key = _key()
    tls = pki.ca.issue_station_cert(
        _csr(_key()), station_id=station_id, site="s", line="l", now=NOW
    )
    return Station(StationId(station_id), key, tls.public_bytes(Encoding.DER))


@dataclass
class Fakes:
    """In-memory ``StationDirectory``, ``CounterLedger`` and ``RefusalLog``."""

    stations: dict[str, StationRecord] = field(default_factory=dict)
    seen: dict[tuple[str, int], str] = field(default_factory=dict)
    refusals: list[tuple[str, str | None]] = field(default_factory=list)

    def station(self, station_id: str) -> StationRecord | None:
        return self.stations.get(station_id)

    def record_request(
        self, station_id: StationId, counter: int, request_digest: str, now: datetime
    ) -> CounterVerdict:
        record = self.stations[station_id]
        if record.status != "active":
            return CounterVerdict.SUSPENDED
        previous = self.seen.get((station_id, counter))
        if previous is not None:
            verdict = CounterVerdict.REPLAYED if previous == request_digest else CounterVerdict.FORK
        elif counter <= record.last_counter:
            verdict = CounterVerdict.REGRESSED
        else:
            self.seen[(station_id, counter)] = request_digest
            self.stations[station_id] = replace(record, last_counter=counter)
            return CounterVerdict.ACCEPTED
        if verdict is not CounterVerdict.REPLAYED:
            self.stations[station_id] = replace(record, status="suspended")
        return verdict

    def record_refusal(
        self, code: str, *, station_id: str | None, detail: dict[str, Any], now: datetime
    ) -> None:
        self.refusals.append((code, station_id))

    def register(self, station: Station, *, pin_tls: bool = True) -> None:
        self.stations[station.station_id] = StationRecord(
            station_id=station.station_id,
            status="active",
            public_key=station.key.public_key(),
            tls_cert_fingerprint=hashlib.sha256(station.tls_der).hexdigest() if pin_tls else None,
            last_counter=0,
        )


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def alice(pki: Pki, fakes: Fakes) -> Station:
    station = _station(pki, "alice-01")
    fakes.register(station)
    return station


def _verifier(
    pki: Pki, fakes: Fakes, clock: Callable[[], datetime] = lambda: NOW
) -> StationRequestVerifier:
    return StationRequestVerifier(
        station_ca=pki.ca.ca_cert, directory=fakes, ledger=fakes, refusals=fakes, clock=clock
    )


def _signed(
    station: Station,
    counter: CounterStore,
    *,
    body: bytes = b'{"serial": "BR-1"}',
    key_id: str | None = None,
    created: datetime = NOW,
    url: str = URL,
) -> SignedRequest:
    auth = StationAuth(key_id or station.station_id, station.key, counter, clock=lambda: created)
    request = httpx.Request("POST", url, content=body, headers={"content-type": "application/json"})
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    flow.close()
    return SignedRequest(
        method=sent.method,
        url=str(sent.url),
        headers=tuple(sent.headers.multi_items()),
        body=sent.content,
        client_cert_der=station.tls_der,
    )


def _refused(verifier: StationRequestVerifier, request: SignedRequest) -> str:
    with pytest.raises(TrustError) as caught:
        verifier.authenticate(request)
    return caught.value.code


# -- counter store --------------------------------------------------------------------------


def test_counter_starts_at_one_and_survives_a_restart(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "counter")
    with store.reserve() as first:
        pass
    with store.reserve() as second:
        pass
    assert (first, second) == (1, 2)
    assert CounterStore(tmp_path / "counter").current() == 2


@pytest.mark.parametrize("content", ["", "abc", "-3", "1e3", str(2**63)])
def test_a_damaged_counter_is_an_error_not_a_restart(tmp_path: Path, content: str) -> None:
    (tmp_path / "counter").write_text(content)
    with pytest.raises(ConfigError) as caught, CounterStore(tmp_path / "counter").reserve():
        pass
    assert caught.value.code == "counter_damaged"


def test_counter_values_are_unique_under_threads(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "counter")
    values: list[int] = []

    def take() -> None:
        for _ in range(50):
            with store.reserve() as value:
                values.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert values == list(range(1, 201))  # the lock spans the use: values go out in order


# -- signing and verification ---------------------------------------------------------------


def test_a_signed_request_verifies_and_its_counter_is_recorded(
    pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    request = _signed(alice, CounterStore(tmp_path / "counter"))
    headers = {k.lower(): v for k, v in request.headers}
    assert headers["station-counter"] == "1"
    assert headers["content-digest"].startswith("sha-256=:")
    assert 'keyid="alice-01"' in headers["signature-input"]
    assert 'alg="ecdsa-p256-sha256"' in headers["signature-input"]
    assert _verifier(pki, fakes).authenticate(request) == "alice-01"
    assert list(fakes.seen) == [("alice-01", 1)]
    assert fakes.refusals == []


def _tamper_body(r: SignedRequest) -> SignedRequest:
    return replace(r, body=r.body.replace(b"BR-1", b"BR-2"))


def _tamper_header(name: str, value: str) -> Callable[[SignedRequest], SignedRequest]:
    def tamper(r: SignedRequest) -> SignedRequest:
        lines = tuple((k, value if k.lower() == name else v) for k, v in r.headers)
        return replace(r, headers=lines)

    return tamper


def _drop_headers(*names: str) -> Callable[[SignedRequest], SignedRequest]:
    def tamper(r: SignedRequest) -> SignedRequest:
        return replace(r, headers=tuple((k, v) for k, v in r.headers if k.lower() not in names))

    return tamper


TAMPERING = {
    "body": (_tamper_body, "signature_invalid"),
    "counter": (_tamper_header("station-counter", "7"), "signature_invalid"),
    "method": (lambda r: replace(r, method="PUT"), "signature_invalid"),
    "path": (
        lambda r: replace(r, url=r.url.replace("enrollments", "serials")),
        "signature_invalid",
    ),
    "query": (lambda r: replace(r, url=r.url + "?x=1"), "signature_invalid"),
    "authority": (lambda r: replace(r, url=r.url.replace("8443", "9443")), "signature_invalid"),
    "signature": (_tamper_header("signature", "station=:AAAA:"), "signature_invalid"),
    "no-signature": (_drop_headers("signature", "signature-input"), "signature_missing"),
    "no-digest": (_drop_headers("content-digest"), "signature_invalid"),
    "no-client-cert": (lambda r: replace(r, client_cert_der=None), "client_cert_required"),
    "garbage-cert": (lambda r: replace(r, client_cert_der=b"\x30\x03junk"), "client_cert_required"),
}


@pytest.mark.parametrize("case", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_is_refused_with_its_code_and_audited(
    case: str, pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    tamper, code = TAMPERING[case]
    request = tamper(_signed(alice, CounterStore(tmp_path / "counter")))
    assert _refused(_verifier(pki, fakes), request) == code
    assert [c for c, _ in fakes.refusals] == [code]
    assert fakes.seen == {}


def test_a_signature_over_too_few_components_is_refused(
    pki: Pki, fakes: Fakes, alice: Station
) -> None:
    from http_message_signatures import HTTPMessageSigner, algorithms

    request = httpx.Request("POST", URL, content=b"{}", headers={"station-counter": "1"})
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ECDSA_P256_SHA256)
    prepared = signer.prepare(
        request,
        key_id=alice.station_id,
        created=NOW,
        covered_component_ids=("@method",),
        body=b"{}",
    )
    der = alice.key.sign(prepared.signature_base, ec.ECDSA(hashes.SHA256()))
    signer.apply(request, prepared, algorithms.ECDSA_P256_SHA256.signature_from_der(der))
    signed = SignedRequest("POST", URL, tuple(request.headers.multi_items()), b"{}", alice.tls_der)
    assert _refused(_verifier(pki, fakes), signed) == "signature_invalid"


@pytest.mark.parametrize(
    ("skew", "code"),
    [
        (timedelta(seconds=299), None),
        (timedelta(seconds=301), "request_stale"),
        (timedelta(seconds=-299), None),
        (timedelta(seconds=-301), "request_stale"),
    ],
    ids=["299s-late", "301s-late", "299s-early", "301s-early"],
)
def test_created_must_be_within_the_skew(
    skew: timedelta, code: str | None, pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    request = _signed(alice, CounterStore(tmp_path / "counter"), created=NOW - skew)
    verifier = _verifier(pki, fakes)
    if code is None:
        assert verifier.authenticate(request) == alice.station_id
    else:
        assert _refused(verifier, request) == code


def test_keyid_of_another_station_than_the_tls_certificate(
    pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    bob = _station(pki, "bob-02")
    fakes.register(bob)
    request = _signed(alice, CounterStore(tmp_path / "counter"), key_id="bob-02")
    assert _refused(_verifier(pki, fakes), request) == "client_cert_mismatch"


def test_a_tls_certificate_other_than_the_pinned_one(
    pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    other_tls = pki.ca.issue_station_cert(
        _csr(_key()), station_id=alice.station_id, site="s", line="l", now=NOW
    )
    request = _signed(alice, CounterStore(tmp_path / "counter"))
    request = replace(request, client_cert_der=other_tls.public_bytes(Encoding.DER))
    assert _refused(_verifier(pki, fakes), request) == "client_cert_mismatch"


def test_unknown_station_and_station_without_a_key(pki: Pki, fakes: Fakes, tmp_path: Path) -> None:
    ghost = _station(pki, "ghost-03")
    verifier = _verifier(pki, fakes)
    assert _refused(verifier, _signed(ghost, CounterStore(tmp_path / "c1"))) == "station_unknown"
    fakes.register(ghost)
    fakes.stations[ghost.station_id] = replace(fakes.stations[ghost.station_id], public_key=None)
    assert _refused(verifier, _signed(ghost, CounterStore(tmp_path / "c2"))) == "station_unknown"


@pytest.mark.parametrize(
    ("status", "code"), [("suspended", "station_suspended"), ("revoked", "station_revoked")]
)
def test_station_status_is_enforced(
    status: str, code: str, pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    fakes.stations[alice.station_id] = replace(fakes.stations[alice.station_id], status=status)
    assert _refused(_verifier(pki, fakes), _signed(alice, CounterStore(tmp_path / "c"))) == code


def test_replay_fork_and_regression(pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path) -> None:
    verifier = _verifier(pki, fakes)
    counter = CounterStore(tmp_path / "counter")
    first = _signed(alice, counter)
    assert verifier.authenticate(first) == alice.station_id
    assert _refused(verifier, first) == "request_replayed"
    (tmp_path / "clone").write_text("0\n")
    clone = CounterStore(tmp_path / "clone")
    assert _refused(verifier, _signed(alice, clone, body=b"other")) == "counter_fork"
    assert fakes.stations[alice.station_id].status == "suspended"
    assert _refused(verifier, _signed(alice, counter)) == "station_suspended"


def test_a_lower_unseen_counter_is_a_regression(
    pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    verifier = _verifier(pki, fakes)
    (tmp_path / "counter").write_text("9\n")
    assert (
        verifier.authenticate(_signed(alice, CounterStore(tmp_path / "counter")))
        == alice.station_id
    )
    assert (
        _refused(verifier, _signed(alice, CounterStore(tmp_path / "fresh"))) == "counter_regressed"
    )


# -- certificates ---------------------------------------------------------------------------


def test_station_certificate_profile(pki: Pki) -> None:
    cert = pki.ca.issue_station_cert(
        _csr(_key()), station_id="st-9", site="plant", line="L2", now=NOW
    )
    assert verify_station_cert(cert, station_ca=pki.ca.ca_cert, now=NOW) == "st-9"
    assert (
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "plant/L2"
    )
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_bc = pki.ca.ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ca_bc.ca and ca_bc.path_length == 0


def test_certificates_from_other_cas_are_not_station_certificates(pki: Pki) -> None:
    issuing_key = _key()
    issuing = build_issuing(
        organization=ORG,
        issuing_public_key=issuing_key.public_key(),
        root_cert=pki.root,
        root_key=pki.root_key,
        now=NOW - timedelta(days=1),
    )
    sibling = StationCa(root_cert=pki.root, ca_cert=issuing, ca_key=issuing_key, organization=ORG)
    cert = sibling.issue_station_cert(_csr(_key()), station_id="st-9", site="s", line="l", now=NOW)
    with pytest.raises(ClientCertUntrusted):
        verify_station_cert(cert, station_ca=pki.ca.ca_cert, now=NOW)
    good = pki.ca.issue_station_cert(_csr(_key()), station_id="st-9", site="s", line="l", now=NOW)
    with pytest.raises(ClientCertUntrusted):
        verify_station_cert(good, station_ca=pki.ca.ca_cert, now=NOW + timedelta(days=3 * 365))


@pytest.mark.parametrize("bad", ["", "-x", "a b", "é", "x" * 65, "a/b"])
def test_station_ids_are_checked(bad: str) -> None:
    with pytest.raises(InputError):
        check_station_id(bad)


def test_request_url_keeps_the_raw_path() -> None:
    scope = {
        "scheme": "https",
        "path": "/v1/a/b",
        "raw_path": b"/v1/a%2Fb",
        "query_string": b"x=%20",
        "headers": [(b"host", b"127.0.0.1:8443")],
    }
    assert request_url(scope) == "https://127.0.0.1:8443/v1/a%2Fb?x=%20"


# -- hostile headers: refuse cleanly, never crash ---------------------------------------------

_header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@settings(max_examples=200, deadline=None)
@given(
    signature=_header_text,
    signature_input=st.one_of(
        _header_text,
        _header_text.map(lambda t: f'station=("@method" "station-counter");keyid="{t}";created=1'),
    ),
    counter=_header_text,
    digest=_header_text,
)
def test_hostile_signature_headers_are_refused_cleanly(
    signature: str, signature_input: str, counter: str, digest: str
) -> None:
    fakes, station = Fakes(), _STATION
    fakes.register(station)
    request = SignedRequest(
        method="POST",
        url=URL,
        headers=(
            ("signature", signature),
            ("signature-input", signature_input),
            ("station-counter", counter),
            ("content-digest", digest),
        ),
        body=b"{}",
        client_cert_der=station.tls_der,
    )
    with pytest.raises(TrustError):
        _verifier(_PKI, fakes).authenticate(request)
    assert len(fakes.refusals) == 1


_STATION = _station(_PKI, "fuzz-01")


def test_a_directory_outage_is_transient_not_a_bad_signature(
    pki: Pki, fakes: Fakes, alice: Station, tmp_path: Path
) -> None:
    class Down(Fakes):
        def station(self, station_id: str) -> StationRecord | None:
            raise TransientError("database down", code="db_unavailable")

    down = Down(stations=fakes.stations)
    with pytest.raises(TransientError):
        _verifier(pki, down).authenticate(_signed(alice, CounterStore(tmp_path / "counter")))
    assert down.refusals == []


def test_counter_ceiling_is_durable_ahead_of_the_values_used(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "counter", boot_id="boot-a")
    for expected in range(1, 6):
        with store.reserve() as value:
            assert value == expected
    assert store.ceiling() == COUNTER_BLOCK  # one durable write covered the whole block
    assert CounterStore(tmp_path / "counter", boot_id="boot-a").current() == 5


def test_after_a_power_loss_the_counter_resumes_above_the_ceiling(tmp_path: Path) -> None:
    with CounterStore(tmp_path / "counter", boot_id="boot-a").reserve():
        pass
    rebooted = CounterStore(tmp_path / "counter", boot_id="boot-b")
    with rebooted.reserve() as value:
        assert value == COUNTER_BLOCK + 1  # never a value the last boot may have used
    assert rebooted.ceiling() == 2 * COUNTER_BLOCK


@pytest.mark.parametrize("content", ["", "x y z", "7", f"{10**6} {COUNTER_BLOCK} boot-a"])
def test_a_doubtful_last_used_record_skips_to_the_ceiling(tmp_path: Path, content: str) -> None:
    with CounterStore(tmp_path / "counter", boot_id="boot-a").reserve():
        pass
    (tmp_path / "counter.used").write_text(content)
    with CounterStore(tmp_path / "counter", boot_id="boot-a").reserve() as value:
        assert value == COUNTER_BLOCK + 1


def test_without_a_boot_id_every_value_is_durable(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "counter", boot_id="")
    for _ in range(3):
        with store.reserve():
            pass
    assert store.ceiling() == 3
