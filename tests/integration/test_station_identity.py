"""Station identity end to end: SoftHSM2 station keys, the station CA, mutual TLS on 127.0.0.1,
RFC 9421 signed requests with counters, clone (counter fork) detection, on SQLite and PostgreSQL.

A small FastAPI app with the real ``authenticated_station`` dependency is served by uvicorn with
``mtls_uvicorn_options``; stations talk to it with ``station_ssl_context`` + ``StationAuth``.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pkcs11
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from birthright.ca.authority import FactoryCa
from birthright.ca.station import (
    StationCa,
    init_station_ca,
    load_station_ca,
    server_tls_files,
    write_server_tls,
)
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.models import AlertRow, AuditEventRow, StationRequestRow, StationRow
from birthright.db.operations import Operations
from birthright.db.stations import SqlStationLedger, StationIdentities
from birthright.errors import BirthrightError, ConfigError, DeviceError
from birthright.se.pkcs11 import TokenKeySigner, token_session
from birthright.server.station_auth import (
    AuthenticatedStation,
    CounterVerdict,
    StationRequestVerifier,
)
from birthright.server.tls import mtls_uvicorn_options
from birthright.settings import Settings
from birthright.station.identity import (
    SIGNING_KEY_LABEL,
    create_station_identity,
    install_station_certificates,
    load_station_config,
    load_station_signer,
    station_ssl_context,
)
from birthright.station.signing import CounterStore, StationAuth
from birthright.types import StationId
from tests.conftest import free_port
from tests.integration.conftest import TEST_PIN
from tests.leakscan import ENCRYPTED_PEM_HEADER, scan_tree

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

SITE, LINE = "site1", "line1"


def utc_now() -> datetime:
    return datetime.now(UTC)


def echo_app(verifier: StationRequestVerifier) -> FastAPI:
    app = FastAPI()
    app.state.station_auth = verifier

    @app.exception_handler(BirthrightError)
    async def _error(_request: Request, exc: BirthrightError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, exc.http_status)

    @app.post("/v1/echo")
    async def echo(station: AuthenticatedStation, request: Request) -> dict[str, object]:
        return {"station": station, "bytes": len(await request.body())}

    return app


@dataclass
class Handle:
    """One provisioned station: its directory, its token signer and its certificates."""

    station_id: str
    directory: Path
    signer: TokenKeySigner


@dataclass
class World:
    settings: Settings
    station_ca: StationCa
    sessions: sessionmaker[Session]
    url: str
    root_file: Path
    softhsm_dir: Path
    tmp: Path

    def station(self, name: str, *, register: bool = True) -> Handle:
        sid = f"{name}-{uuid.uuid4().hex[:8]}"
        directory = self.tmp / sid
        keys = create_station_identity(directory, sid, pin=TEST_PIN, softhsm_dir=self.softhsm_dir)
        now = utc_now()
        signing, tls = (
            self.station_ca.issue_station_cert(csr, station_id=sid, site=SITE, line=LINE, now=now)
            for csr in (keys.signing_csr, keys.tls_csr)
        )
        install_station_certificates(
            directory, signing_cert=signing, tls_cert=tls, chain=self.station_ca.chain()
        )
        if register:
            Operations(self.sessions).register_station(sid, site=SITE, line=LINE, now=now)
            StationIdentities(self.sessions).bind(sid, signing_cert=signing, tls_cert=tls, now=now)
        return Handle(sid, directory, load_station_signer(directory, sid, pin=TEST_PIN))

    def client(
        self,
        station: Handle,
        *,
        directory: Path | None = None,
        key_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        signed: bool = True,
        context: ssl.SSLContext | None = None,
    ) -> httpx.Client:
        directory = directory or station.directory
        auth = self.auth(station, directory=directory, key_id=key_id, clock=clock)
        return httpx.Client(
            base_url=self.url,
            verify=context or station_ssl_context(directory, self.root_file),
            auth=auth if signed else None,
            timeout=10,
        )

    def auth(
        self,
        station: Handle,
        *,
        directory: Path | None = None,
        key_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> StationAuth:
        counter = CounterStore(load_station_config(directory or station.directory).counter_file)
        return StationAuth(key_id or station.station_id, station.signer, counter, clock=clock)

    def signed_request(self, station: Handle, body: bytes) -> httpx.Request:
        """A request signed once by the station, to send as-is (or altered) later."""
        request = httpx.Request("POST", f"{self.url}/v1/echo", content=body)
        flow = self.auth(station).sync_auth_flow(request)
        signed = next(flow)
        flow.close()
        return signed

    def audit(self, code: str) -> list[AuditEventRow]:
        with self.sessions() as s:
            query = select(AuditEventRow).where(AuditEventRow.code == code)
            return list(s.execute(query).scalars())

    def row(self, station_id: str) -> StationRow:
        with self.sessions() as s:
            row = s.get(StationRow, station_id)
            assert row is not None
            return row


@pytest.fixture
def world(
    settings: Settings,
    factory_ca: FactoryCa,
    softhsm_dir: Path,
    pkcs11_lib: Pkcs11Lib,
    tmp_path: Path,
) -> Iterator[World]:
    now = utc_now()
    station_ca = init_station_ca(settings, now=now)
    tls_files = write_server_tls(settings.ws, station_ca, now=now)
    engine = make_engine(settings.effective_database_url)
    sessions = make_sessionmaker(engine)
    ledger = SqlStationLedger(sessions)
    verifier = StationRequestVerifier(
        station_ca=station_ca.ca_cert,
        directory=ledger,
        ledger=ledger,
        refusals=ledger,
        clock=utc_now,
    )
    port = free_port()
    config = uvicorn.Config(
        echo_app(verifier),
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="critical",
        **mtls_uvicorn_options(tls_files),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the TLS test server did not start"
        time.sleep(0.02)
    root_file = settings.ws.ca_dir / "root.pem"
    try:
        yield World(
            settings,
            station_ca,
            sessions,
            f"https://127.0.0.1:{port}",
            root_file,
            softhsm_dir,
            tmp_path,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def post(client: httpx.Client, body: bytes = b'{"unit": 1}') -> tuple[int, str]:
    response = client.post("/v1/echo", content=body, headers={"content-type": "application/json"})
    payload = response.json()
    return response.status_code, str(payload.get("code") or payload.get("station"))


# -- identity at rest -----------------------------------------------------------------------


def test_station_key_never_leaves_its_token_and_tls_key_is_encrypted(
    world: World, pkcs11_lib: Pkcs11Lib
) -> None:
    station = world.station("keys")
    config = load_station_config(station.directory)
    with token_session(pkcs11_lib, token_label=config.token_label, pin=TEST_PIN) as session:
        template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: SIGNING_KEY_LABEL}
        (private,) = list(session.get_objects(template))
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(p11e.AttributeSensitive):
            _ = private[Attribute.VALUE]
        assert isinstance(private, pkcs11.PrivateKey)
    with pytest.raises(DeviceError):
        station.signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    assert config.tls_key.read_bytes().startswith(ENCRYPTED_PEM_HEADER.encode())
    secret = station.directory / "tls-key-passphrase"
    assert secret.stat().st_mode & 0o777 == 0o600
    server_key = world.settings.ws.ca_dir / "server-key.pem"
    assert server_key.read_bytes().startswith(ENCRYPTED_PEM_HEADER.encode())
    assert (
        (world.settings.ws.ca_dir / "station-ca-key.pem")
        .read_bytes()
        .startswith(ENCRYPTED_PEM_HEADER.encode())
    )
    assert scan_tree(world.tmp) == {}  # workspace and station directories: no plaintext key


def test_station_ca_is_its_own_intermediate_and_is_not_overwritten(world: World) -> None:
    with pytest.raises(ConfigError) as caught:
        init_station_ca(world.settings, now=utc_now())
    assert caught.value.code == "station_ca_exists"
    loaded = load_station_ca(world.settings)
    assert loaded.ca_cert == world.station_ca.ca_cert
    assert loaded.ca_cert.issuer == loaded.root_cert.subject
    assert server_tls_files(world.settings.ws).client_ca_file.name == "station-ca.pem"


# -- accepted and refused requests ----------------------------------------------------------


def test_a_signed_request_over_mutual_tls_is_accepted(world: World) -> None:
    station = world.station("ok")
    with world.client(station) as client:
        assert post(client) == (200, station.station_id)
        assert post(client) == (200, station.station_id)
    assert world.row(station.station_id).last_counter == 2
    with world.sessions() as s:
        rows = s.execute(
            select(StationRequestRow.counter).where(
                StationRequestRow.station_id == station.station_id
            )
        ).scalars()
        assert sorted(rows) == [1, 2]


def test_no_client_certificate_is_refused_and_audited(world: World) -> None:
    station = world.station("nocert")
    anonymous = ssl.create_default_context(cafile=str(world.root_file))
    with world.client(station, context=anonymous) as client:
        assert post(client) == (403, "client_cert_required")
    assert len(world.audit("client_cert_required")) == 1


def test_unsigned_request_is_refused(world: World) -> None:
    station = world.station("unsigned")
    with world.client(station, signed=False) as client:
        assert post(client) == (403, "signature_missing")
    (event,) = world.audit("signature_missing")
    assert event.station_id == station.station_id
    assert event.event == "station.request_refused"


def test_tampered_body_is_refused(world: World) -> None:
    station = world.station("tamper")
    signed = world.signed_request(station, b'{"unit": 1}')
    forged = httpx.Request("POST", signed.url, headers=signed.headers, content=b'{"unit": 2}')
    with world.client(station, signed=False) as plain:
        response = plain.send(forged)
    assert (response.status_code, response.json()["code"]) == (403, "signature_invalid")
    assert world.row(station.station_id).last_counter == 0


def test_signature_of_another_station_than_the_tls_certificate(world: World) -> None:
    alice, bob = world.station("alice"), world.station("bob")
    with world.client(alice, key_id=bob.station_id) as client:
        assert post(client) == (403, "client_cert_mismatch")


def test_unregistered_station_is_unknown(world: World) -> None:
    ghost = world.station("ghost", register=False)
    with world.client(ghost) as client:
        assert post(client) == (403, "station_unknown")


def test_stale_request_is_refused(world: World) -> None:
    station = world.station("stale")
    with world.client(station, clock=lambda: utc_now() - timedelta(seconds=301)) as client:
        assert post(client) == (403, "request_stale")


def test_revoked_station_is_refused(world: World) -> None:
    station = world.station("revoked")
    ops = Operations(world.sessions)
    ops.set_station_status(station.station_id, "revoked", reason="test", now=utc_now())
    with world.client(station) as client:
        assert post(client) == (403, "station_revoked")


def test_replayed_request_is_refused_without_suspending(world: World) -> None:
    station = world.station("replay")
    signed = world.signed_request(station, b'{"unit": 1}')
    with world.client(station, signed=False) as plain:
        first, again = plain.send(signed), plain.send(signed)
    assert first.status_code == 200
    assert (again.status_code, again.json()["code"]) == (403, "request_replayed")
    assert world.row(station.station_id).status == "active"


def test_a_cloned_station_is_caught_as_a_counter_fork(world: World) -> None:
    station = world.station("clone")
    with world.client(station) as real:
        assert post(real)[0] == 200
        clone_dir = world.tmp / "stolen-copy"
        shutil.copytree(station.directory, clone_dir)  # same counter, same TLS key
        assert post(real, b'{"unit": 2}')[0] == 200
        with world.client(station, directory=clone_dir) as clone:
            assert post(clone, b'{"unit": "ghost"}') == (403, "counter_fork")
        assert post(real, b'{"unit": 3}') == (403, "station_suspended")
    row = world.row(station.station_id)
    assert (row.status, row.status_reason, row.last_counter) == ("suspended", "counter_fork", 2)
    with world.sessions() as s:
        alerts = list(s.execute(select(AlertRow)).scalars())
    assert [(a.kind, a.severity, a.station_id) for a in alerts] == [
        ("station.counter_fork", "critical", station.station_id)
    ]
    assert [e.event for e in world.audit("counter_fork")] == [
        "station.suspended",
        "station.request_refused",
    ]


def test_a_lower_unseen_counter_suspends_the_station(world: World) -> None:
    station = world.station("regress")
    clone_dir = world.tmp / "old-copy"
    shutil.copytree(station.directory, clone_dir)
    load_station_config(station.directory).counter_file.write_text("9\n")
    with world.client(station) as real:
        assert post(real)[0] == 200  # counter 10
    with world.client(station, directory=clone_dir) as clone:
        assert post(clone) == (403, "counter_regressed")  # counter 1: never seen, below 10
    assert world.row(station.station_id).status == "suspended"
    with world.sessions() as s:
        kinds = list(s.execute(select(AlertRow.kind)).scalars())
    assert kinds == ["station.counter_regressed"]


# -- certificates the TLS handshake refuses -------------------------------------------------


def _client_context(
    tmp: Path, world: World, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> ssl.SSLContext:
    cert_file, key_file = tmp / "foreign.pem", tmp / "foreign-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"test-only"),
        )
    )
    context = ssl.create_default_context(cafile=str(world.root_file))
    context.load_cert_chain(str(cert_file), str(key_file), password="test-only")
    return context


def _foreign_cert(station_id: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Somebody Else's CA")])
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station_id)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"urn:birthright:station:{station_id}")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _tls12_handshake(world: World, context: ssl.SSLContext) -> None:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    port = urlsplit(world.url).port or 443
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def test_foreign_ca_and_device_certificates_fail_the_tls_handshake(
    world: World, factory_ca: FactoryCa, tmp_path: Path
) -> None:
    station = world.station("foreign")
    key = ec.generate_private_key(ec.SECP256R1())
    device_cert = factory_ca.issue_device(
        public_key=key.public_key(), product_serial="BRS-1", chip_id="C0FFEE", now=utc_now()
    )
    for cert in (_foreign_cert(station.station_id, key), device_cert):
        context = _client_context(tmp_path, world, cert, key)
        with (
            world.client(station, context=context) as client,
            pytest.raises(httpx.TransportError) as refused,
        ):
            post(client)
        assert "disconnected" in str(refused.value)
        # TLS 1.3 reports a refused client certificate only after the client's side of the
        # handshake; with TLS 1.2 the handshake itself visibly fails
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _tls12_handshake(world, context)
    _tls12_handshake(world, station_ssl_context(station.directory, world.root_file))  # control
    assert world.row(station.station_id).last_counter == 0
    assert world.audit("client_cert_untrusted") == []  # refused before any HTTP


def test_a_station_ca_certificate_naming_no_station_is_untrusted(
    world: World, tmp_path: Path
) -> None:
    """It passes the handshake (the station CA issued it) but the app finds no station in it."""
    station = world.station("noname")
    key = ec.generate_private_key(ec.SECP256R1())
    ca = world.station_ca
    now = utc_now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station.station_id)]))
        .issuer_name(ca.ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("line.example")]), critical=False)
        .sign(ca.ca_key, hashes.SHA256())
    )
    with world.client(station, context=_client_context(tmp_path, world, cert, key)) as client:
        assert post(client) == (403, "client_cert_untrusted")
    assert len(world.audit("client_cert_untrusted")) == 1


# -- the ledger under concurrency -----------------------------------------------------------


def test_one_counter_sent_concurrently_is_accepted_once_then_forks(database_url: str) -> None:
    """Eight service threads get counter 1 with different requests at the same moment."""
    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        sid = f"race-{uuid.uuid4().hex[:8]}"
        Operations(sessions).register_station(sid, site=SITE, line=LINE, now=utc_now())
        ledger = SqlStationLedger(sessions)
        barrier = threading.Barrier(8)

        def send(i: int) -> CounterVerdict:
            barrier.wait()
            return ledger.record_request(StationId(sid), 1, f"{i:064x}", utc_now())

        with ThreadPoolExecutor(8) as pool:
            verdicts = Counter(pool.map(send, range(8)))
        assert verdicts == {
            CounterVerdict.ACCEPTED: 1,
            CounterVerdict.FORK: 1,
            CounterVerdict.SUSPENDED: 6,
        }
        with sessions() as s:
            assert s.execute(select(AlertRow.kind)).scalars().all() == ["station.counter_fork"]
            row = s.get(StationRow, sid)
            assert row is not None
            assert (row.status, row.last_counter) == ("suspended", 1)
    finally:
        engine.dispose()
