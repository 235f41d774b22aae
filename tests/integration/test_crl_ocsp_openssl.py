"""The published CRL and the OCSP responder, checked by `openssl` against real HTTP."""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from birthright.ca.authority import FactoryCa
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_revocation_api import make_unit

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as client:
        yield client


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPENSSL), *args], capture_output=True, text=True, timeout=30, check=False
    )


def write_pem(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return str(path)


@pytest.fixture
def pki(tmp_path: Path, factory_ca: FactoryCa) -> dict[str, str]:
    return {
        "root": write_pem(tmp_path / "root.pem", factory_ca.root_cert),
        "issuing": write_pem(tmp_path / "issuing.pem", factory_ca.issuing_cert),
    }


def unit_pem(tmp_path: Path, api: httpx.Client, chip: str) -> tuple[str, str]:
    unit = make_unit(api, chip)
    path = tmp_path / f"{chip}.pem"
    path.write_text(unit.chain[0])
    return unit.serial, str(path)


def fetch_crl(api: httpx.Client, tmp_path: Path) -> tuple[str, httpx.Response]:
    r = api.get("/crl/issuing.crl")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pkix-crl"
    der = tmp_path / "crl.der"
    der.write_bytes(r.content)
    pem = tmp_path / "crl.pem"
    converted = openssl("crl", "-inform", "DER", "-in", str(der), "-out", str(pem))
    assert converted.returncode == 0, converted.stderr
    return str(pem), r


def test_openssl_verify_with_the_crl_refuses_the_revoked_unit_only(
    api: httpx.Client, pki: dict[str, str], tmp_path: Path
) -> None:
    bad_serial, bad = unit_pem(tmp_path, api, "CHIP-BAD")
    _, good = unit_pem(tmp_path, api, "CHIP-GOOD")
    crl_pem, first = fetch_crl(api, tmp_path)
    r = api.post("/v1/revocations", json={"serial": bad_serial, "reason": "keyCompromise"})
    assert r.status_code == 201
    crl_pem, second = fetch_crl(api, tmp_path)
    assert second.headers["etag"] != first.headers["etag"]
    assert "max-age" in second.headers["cache-control"]
    assert "last-modified" in second.headers
    cached = api.get("/crl/issuing.crl", headers={"If-None-Match": second.headers["etag"]})
    assert cached.status_code == 304

    text = openssl("crl", "-in", crl_pem, "-noout", "-text").stdout
    assert "X509v3 CRL Number" in text
    assert "Key Compromise" in text
    assert "X509v3 Authority Key Identifier" in text
    verify = ["verify", "-crl_check", "-CAfile", pki["root"], "-untrusted", pki["issuing"]]
    ok = openssl(*verify, "-CRLfile", crl_pem, good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = openssl(*verify, "-CRLfile", crl_pem, bad)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr


def ocsp_query(served: ServedBackend, pki: dict[str, str], cert: str) -> str:
    result = openssl(
        "ocsp",
        "-issuer",
        pki["issuing"],
        "-cert",
        cert,
        "-url",
        f"{served.url}/ocsp",
        "-CAfile",
        pki["root"],
        "-resp_text",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr
    assert "nonce" not in result.stderr.lower(), result.stderr  # openssl's nonce is echoed
    return result.stdout


def test_openssl_ocsp_reports_good_revoked_and_unknown(
    api: httpx.Client,
    served: ServedBackend,
    pki: dict[str, str],
    factory_ca: FactoryCa,
    tmp_path: Path,
) -> None:
    bad_serial, bad = unit_pem(tmp_path, api, "CHIP-BAD")
    _, good = unit_pem(tmp_path, api, "CHIP-GOOD")
    assert (
        api.post(
            "/v1/revocations", json={"serial": bad_serial, "reason": "keyCompromise"}
        ).status_code
        == 201
    )

    assert f"{good}: good" in ocsp_query(served, pki, good)
    revoked = ocsp_query(served, pki, bad)
    assert f"{bad}: revoked" in revoked
    assert "Reason: keyCompromise" in revoked

    # a certificate we never issued, carrying the issuing CA's name
    throwaway = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    ghost = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(factory_ca.issuing_cert.subject)
        .public_key(throwaway.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(throwaway, hashes.SHA256())
    )
    ghost_pem = write_pem(tmp_path / "ghost.pem", ghost)
    assert f"{ghost_pem}: unknown" in ocsp_query(served, pki, ghost_pem)


def test_ocsp_answers_garbage_and_foreign_issuers_without_a_500(
    api: httpx.Client, tmp_path: Path
) -> None:
    for body in (b"", b"\x30\x03\x02\x01\x00", b"not der at all"):
        r = api.post("/ocsp", content=body, headers={"content-type": "application/ocsp-request"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(r.content)
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    r = api.post("/ocsp", content=b"\x30" * 5000)  # over MAX_REQUEST_BYTES
    assert r.status_code == 200
    assert ocsp.load_der_ocsp_response(r.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    r = api.get("/ocsp/%%%not-base64")
    assert ocsp.load_der_ocsp_response(r.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    # a request about another CA's certificate (self-issued): unauthorized
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "other CA")])
    other = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    request = ocsp.OCSPRequestBuilder().add_certificate(other, other, hashes.SHA1()).build()  # noqa: S303
    r = api.post("/ocsp", content=request.public_bytes(Encoding.DER))
    assert ocsp.load_der_ocsp_response(r.content).response_status is (
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    )


def test_ocsp_get_answers_like_post(
    api: httpx.Client, factory_ca: FactoryCa, tmp_path: Path
) -> None:
    _, pem = unit_pem(tmp_path, api, "CHIP-GET")
    cert = x509.load_pem_x509_certificate(Path(pem).read_bytes())
    request = ocsp.OCSPRequestBuilder().add_certificate(
        cert, factory_ca.issuing_cert, hashes.SHA256()
    )
    b64 = base64.b64encode(request.build().public_bytes(Encoding.DER)).decode()
    r = api.get("/ocsp/" + urllib.parse.quote(b64, safe=""))
    assert r.headers["content-type"] == "application/ocsp-response"
    response = ocsp.load_der_ocsp_response(r.content)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == cert.serial_number
    response_key = factory_ca.issuing_cert.public_key()
    assert isinstance(response_key, ec.EllipticCurvePublicKey)
    response_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
