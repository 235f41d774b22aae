"""EST (RFC 7030) over real mutual TLS on 127.0.0.1: curl + openssl as a standard EST client
would drive it, and our own client with a key in a real SoftHSM2 token (SQLite, PostgreSQL)."""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from birthright.ca.setup import init_workspace_pki
from birthright.ca.station import server_tls_files
from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from birthright.est.client import EstClient, EstRefused
from birthright.revocation.model import Reason
from birthright.se.sim import DeviceSet, create_devices
from birthright.server.backend import Backend, build_backend
from birthright.server.tls import mtls_uvicorn_options
from birthright.settings import Settings, load_settings
from birthright.station.enroll_station import register_station_identity
from birthright.station.identity import load_station_config, station_ssl_context
from tests.conftest import ThreadServer, free_port

WO = "WO-EST"
_ids = itertools.count(1)
_chips = itertools.count(1)
#: openssl keys are written encrypted, as a careful EST client keeps them.
KEY_PASS = secrets.token_hex(16)


@dataclass
class EstLine:
    backend: Backend
    url: str
    settings: Settings
    station_dir: Path
    station_id: str
    tmp: Path

    @property
    def root(self) -> Path:
        return self.settings.ws.ca_dir / "root.pem"

    def station_context(self) -> ssl.SSLContext:
        return station_ssl_context(self.station_dir, self.root)

    def curl(
        self, path: str, *args: str, cert: tuple[Path, Path] | None = None
    ) -> tuple[int, bytes]:
        """curl as an EST client: (HTTP status, body). ``cert`` overrides the station's."""
        out = self.tmp / f"curl-{next(_chips)}.out"
        cmd = ["curl", "-sS", "--cacert", str(self.root), "-o", str(out), "-w", "%{http_code}"]
        if cert is None:
            config = load_station_config(self.station_dir)
            cmd += ["--cert", str(config.tls_cert), "--key", str(config.tls_key)]
            cmd += ["--pass", config.tls_key_passphrase]
        else:
            cmd += ["--cert", str(cert[0]), "--key", str(cert[1]), "--pass", KEY_PASS]
        done = subprocess.run(
            [*cmd, *args, f"{self.url}{path}"], capture_output=True, check=True, timeout=30
        )
        return int(done.stdout), out.read_bytes()


@pytest.fixture
def est_line(
    tmp_path: Path, database_url: str, softhsm_dir: Path, sim_device_set: DeviceSet
) -> Iterator[EstLine]:
    settings = load_settings(tmp_path / "ws", database_url=database_url, port=free_port(), est=True)
    settings.ws.create()
    now = datetime.now(UTC)
    init_workspace_pki(settings, now=now)
    backend = build_backend(settings)
    station_id = f"est-{next(_ids)}"
    register_station_identity(
        settings,
        backend.sessions,
        station_id=station_id,
        site="s1",
        line="l1",
        station_dir=tmp_path / "station",
        softhsm_dir=softhsm_dir,
        now=now,
    )
    for wo, product in ((WO, "P-EST"), ("WO-GENUINE", "P-GENUINE")):
        WorkOrders(backend.sessions).open(
            WorkOrderSpec(
                wo,
                product,
                "s1",
                "l1",
                10,
                "E",
                1,
                100,
                now - timedelta(minutes=1),
                now + timedelta(days=1),
            ),
            now=now,
        )
    backend.products.set_require_genuine_se("P-GENUINE", True, now=now)
    tls = mtls_uvicorn_options(server_tls_files(settings.ws), also_trust=backend.chain[:1])
    server = ThreadServer(backend, settings.port, **tls)
    server.start()
    try:
        yield EstLine(
            backend,
            f"https://127.0.0.1:{settings.port}",
            settings,
            tmp_path / "station",
            station_id,
            tmp_path,
        )
    finally:
        server.stop()
        backend.close()


def openssl_csr(
    tmp: Path, chip: str, *, serial: str | None = None, key: Path | None = None
) -> tuple[Path, Path]:
    """An openssl-generated P-256 key (unless given) and its base64 DER CSR, as EST sends it."""
    n = next(_chips)
    if key is None:
        key = tmp / f"key-{n}.pem"
        subprocess.run(
            [
                "openssl",
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-aes-256-cbc",
                "-pass",
                f"pass:{KEY_PASS}",
                "-out",
                str(key),
            ],
            check=True,
            capture_output=True,
        )
    subject = f"/CN={chip}" + (f"/serialNumber={serial}" if serial else "")
    der = subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(key),
            "-passin",
            f"pass:{KEY_PASS}",
            "-subj",
            subject,
            "-sha256",
            "-outform",
            "DER",
        ],
        check=True,
        capture_output=True,
    ).stdout
    body = tmp / f"csr-{n}.b64"
    body.write_bytes(base64.encodebytes(der))
    return key, body


def pkcs7_certs(tmp: Path, body: bytes) -> list[x509.Certificate]:
    """``openssl base64 -d | openssl pkcs7 -print_certs``, as an EST client reads an answer."""
    der = subprocess.run(
        ["openssl", "base64", "-d"], input=body, check=True, capture_output=True
    ).stdout
    pem = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print_certs"],
        input=der,
        check=True,
        capture_output=True,
    ).stdout
    return x509.load_pem_x509_certificates(pem)


def serial_of(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value)


def audit_codes(line: EstLine, event: str) -> list[str | None]:
    with line.backend.engine.connect() as c:
        rows = c.execute(
            text("SELECT code FROM audit_events WHERE event = :e ORDER BY seq"), {"e": event}
        )
        return [r[0] for r in rows]


def reservations(line: EstLine) -> int:
    with line.backend.engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM serial_reservations")).scalar_one())


def test_curl_and_openssl_enroll_verify_and_reenroll_with_the_units_own_certificate(
    est_line: EstLine,
) -> None:
    line, tmp = est_line, est_line.tmp
    status, body = line.curl("/.well-known/est/cacerts")
    assert status == 200
    ca_certs = pkcs7_certs(tmp, body)
    # a certs-only SignedData holds a SET: compare without order
    assert sorted(c.fingerprint(hashes.SHA256()) for c in ca_certs) == sorted(
        c.fingerprint(hashes.SHA256()) for c in line.backend.chain
    )
    chain = tmp / "chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in ca_certs))

    key, csr = openssl_csr(tmp, "CHIP-CURL-1")
    status, body = line.curl(
        f"/.well-known/est/{WO}/simpleenroll",
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        f"@{csr}",
    )
    assert status == 200, body
    (cert,) = pkcs7_certs(tmp, body)
    leaf = tmp / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(Encoding.PEM))
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(chain), str(leaf)], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    serial = serial_of(cert)
    device = line.backend.operations.device(serial)
    assert device is not None and device.chip_id == "CHIP-CURL-1"
    assert device.station_id == line.station_id and device.work_order_id == WO
    assert audit_codes(line, "enrollment")[-1] is None  # the ok record

    # the unit re-enrolls with its own certificate and a new openssl key
    key2, csr2 = openssl_csr(tmp, "CHIP-CURL-1")
    status, body = line.curl(
        "/.well-known/est/simplereenroll",
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        f"@{csr2}",
        cert=(leaf, key),
    )
    assert status == 200, body
    (renewed,) = pkcs7_certs(tmp, body)
    assert serial_of(renewed) == serial and renewed.serial_number != cert.serial_number
    after = line.backend.operations.device(serial)
    assert after is not None and after.cert_serial == format(renewed.serial_number, "x")
    assert after.key_fingerprint != device.key_fingerprint
    with line.backend.engine.connect() as c:
        reason = c.execute(
            text("SELECT reason FROM revocations WHERE cert_serial = :s"),
            {"s": device.cert_serial},
        ).scalar_one()
    assert reason == "superseded"

    # the superseded certificate no longer re-enrolls
    _k, csr3 = openssl_csr(tmp, "CHIP-CURL-1", key=key2)
    status, body = line.curl(
        "/.well-known/est/simplereenroll",
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        f"@{csr3}",
        cert=(leaf, key),
    )
    assert (status, json.loads(body)["code"]) == (403, "certificate_superseded")


def test_a_softhsm2_token_key_enrolls_through_our_est_client_and_a_station_reenrolls_it(
    est_line: EstLine, sim_device_set: DeviceSet
) -> None:
    (chip,) = create_devices(
        sim_device_set.directory, 1, pin=sim_device_set.pin, start_index=900 + next(_chips)
    )
    with sim_device_set.open(chip.label) as se:
        se.generate_identity_key()
        chip_id = se.chip_id
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, chip_id)]))
            .sign(se.identity_signer(), hashes.SHA256())
            .public_bytes(Encoding.DER)
        )
        with EstClient(est_line.url, context=est_line.station_context()) as est:
            cert = est.simpleenroll(WO, csr)
            assert est.simpleenroll(WO, csr) == cert  # a retry is answered, not refused
            public = se.identity_public_key()
            assert public is not None and cert.public_key() == public
            serial = serial_of(cert)
            # the station re-enrolls the same token key, naming the unit by serialNumber
            named = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
                .sign(se.identity_signer(), hashes.SHA256())
                .public_bytes(Encoding.DER)
            )
            renewed = est.simplereenroll(named)
    assert renewed.public_key() == cert.public_key()
    assert renewed.serial_number != cert.serial_number and serial_of(renewed) == serial
    assert audit_codes(est_line, "reenrollment") == [None]


def _csr(key: ec.EllipticCurvePrivateKey, *attrs: x509.NameAttribute[str]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(attrs)))
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def _cn(value: str) -> x509.NameAttribute[str]:
    return x509.NameAttribute(NameOID.COMMON_NAME, value)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("genuine_se_required", 403, "est_se_proof_unsupported"),
        ("key_of_another_chip", 409, "key_shared"),
        ("serial_not_the_reserved_one", 409, "serial_not_reserved"),
        ("no_chip_id", 400, "est_chip_id_missing"),
        ("unknown_work_order", 404, "work_order_unknown"),
    ],
)
def test_simpleenroll_refuses_what_native_enrollment_refuses_and_audits_it(
    est_line: EstLine, case: str, status: int, code: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with EstClient(est_line.url, context=est_line.station_context()) as est:
        if case == "key_of_another_chip":
            est.simpleenroll(WO, _csr(key, _cn("CHIP-A")))
        before = reservations(est_line)
        label, csr = {
            "genuine_se_required": ("WO-GENUINE", _csr(key, _cn("CHIP-G"))),
            "key_of_another_chip": (WO, _csr(key, _cn("CHIP-B"))),
            "serial_not_the_reserved_one": (
                WO,
                _csr(key, _cn("CHIP-S"), x509.NameAttribute(NameOID.SERIAL_NUMBER, "E99999999")),
            ),
            "no_chip_id": (WO, _csr(key)),
            "unknown_work_order": ("WO-NONE", _csr(key, _cn("CHIP-U"))),
        }[case]
        with pytest.raises(EstRefused) as refused:
            est.simpleenroll(label, csr)
    assert (refused.value.status, refused.value.code) == (status, code)
    if case != "serial_not_the_reserved_one":  # that one is refused after reserving
        assert reservations(est_line) == before
    assert code in audit_codes(est_line, "est.simpleenroll") + audit_codes(
        est_line, "enrollment"
    ) + audit_codes(est_line, "serial.reserve")


def test_transport_level_refusals(est_line: EstLine) -> None:
    tmp = est_line.tmp
    _key, csr = openssl_csr(tmp, "CHIP-T")
    post = ("-H", "Content-Type: application/pkcs10", "--data-binary", f"@{csr}")
    plain = ssl.create_default_context(cafile=str(est_line.root))
    with httpx.Client(base_url=est_line.url, verify=plain, timeout=10) as http:
        r = http.post(
            f"/.well-known/est/{WO}/simpleenroll",
            content=csr.read_bytes(),
            headers={"Content-Type": "application/pkcs10"},
        )
    assert (r.status_code, r.json()["code"]) == (403, "client_cert_required")
    assert "client_cert_required" in audit_codes(est_line, "station.request_refused")
    status, body = est_line.curl(f"/.well-known/est/{WO}/simpleenroll", "--data-binary", f"@{csr}")
    assert (status, json.loads(body)["code"]) == (415, "unsupported_media_type")
    status, body = est_line.curl("/.well-known/est/simpleenroll", *post)
    assert (status, json.loads(body)["code"]) == (400, "est_label_required")
    status, body = est_line.curl(
        f"/.well-known/est/{WO}/simpleenroll",
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
        "not base64!",
    )
    assert (status, json.loads(body)["code"]) == (400, "csr_malformed")
    assert reservations(est_line) == 0


def test_a_revoked_unit_cannot_reenroll(est_line: EstLine) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with EstClient(est_line.url, context=est_line.station_context()) as est:
        cert = est.simpleenroll(WO, _csr(key, _cn("CHIP-R")))
        est_line.backend.revocation.revoke(serial_of(cert), Reason.keyCompromise)
        with pytest.raises(EstRefused) as refused:
            est.simplereenroll(
                _csr(key, x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_of(cert)))
            )
    assert (refused.value.status, refused.value.code) == (403, "device_revoked")
    assert audit_codes(est_line, "reenrollment") == ["device_revoked"]
