"""cfssl's ``serve`` sign API as the peer reference for enrollment: the same issuance over HTTP.

cfssl (Debian package ``golang-cfssl``) is the CA people run when they would rather not write
one. ``cfssl serve`` gets a fresh P-256 CA made for the run and the same pre-made CSRs our
stations send; each client POSTs ``/api/v1/cfssl/sign`` with a CSR and reads back the
certificate. No mTLS, no signed request, no quota, no database: cfssl keeps nothing, so it is
an upper bound for "issue a certificate over HTTP", not the same safety.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.common import Started, free_port, in_parallel

CONFIG = {
    "signing": {
        "default": {
            "expiry": "87600h",
            "usages": ["digital signature", "client auth"],
        }
    }
}


def available() -> bool:
    return shutil.which("cfssl") is not None


def _write_ca(folder: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cfssl bench CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    # cfssl 1.2 reads SEC1 ("EC PRIVATE KEY") keys; the file lives only in the run's temp dir.
    (folder / "ca-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (folder / "ca-key.pem").chmod(0o600)
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "config.json").write_text(json.dumps(CONFIG))


@contextmanager
def cfssl_serve(folder: Path) -> Iterator[int]:
    """``cfssl serve`` on 127.0.0.1 with a CA made for this run; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_ca(folder)
    port = free_port()
    log = (folder / "cfssl.log").open("ab")
    proc = subprocess.Popen(
        [
            "cfssl",
            "serve",
            "-address",
            "127.0.0.1",
            "-port",
            str(port),
            "-ca",
            str(folder / "ca.pem"),
            "-ca-key",
            str(folder / "ca-key.pem"),
            "-config",
            str(folder / "config.json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/api/v1/cfssl/health")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"cfssl serve did not start; see {folder}/cfssl.log"
                    ) from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _client(started: Started, port: int, csrs_pem: list[str]) -> tuple[int, float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    start = started.go()
    done = 0
    for pem in csrs_pem:
        body = json.dumps({"certificate_request": pem})
        conn.request("POST", "/api/v1/cfssl/sign", body, {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        if not answer.get("success") or "BEGIN CERTIFICATE" not in answer["result"]["certificate"]:
            raise RuntimeError(f"cfssl refused a CSR: {answer.get('errors')}")
        done += 1
    conn.close()
    return done, start, time.time()


def sign_rate(port: int, csrs_der: list[bytes], clients: int) -> float:
    """Certificates/s with ``clients`` concurrent client processes (keep-alive each)."""
    pems = [
        x509.load_der_x509_csr(d).public_bytes(serialization.Encoding.PEM).decode()
        for d in csrs_der
    ]
    share = len(pems) // clients
    return in_parallel(_client, [(port, pems[c * share : (c + 1) * share]) for c in range(clients)])
