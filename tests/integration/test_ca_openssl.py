"""Issued certificates checked by an independent implementation: the `openssl` command.

Covers both key storages: the issuing key in an encrypted file (in this process) and in a
SoftHSM2 token (in child processes, since SoftHSM2 reads its configuration once per process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.ca.authority import FactoryCa, init_workspace_ca, load_factory_ca
from birthright.ca.profile import parse_hardware_module_name
from birthright.ca.verify import ChainUntrusted
from birthright.settings import SOFTHSM2_MODULE, Settings, load_settings

IN_CI = bool(os.environ.get("CI"))
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None and not IN_CI, reason="openssl is not installed"
)
needs_softhsm2 = pytest.mark.skipif(
    not Path(SOFTHSM2_MODULE).exists() and not IN_CI, reason="SoftHSM2 is not installed"
)
pytestmark = needs_openssl


def clean_env() -> dict[str, str]:
    drop = ("BIRTHRIGHT_", "SOFTHSM2_CONF")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=30, check=False
    )


def openssl_verify(ws: Path, device_pem: Path) -> subprocess.CompletedProcess[str]:
    return openssl(
        "verify",
        "-x509_strict",
        "-CAfile",
        ws / "certs" / "root.pem",
        "-untrusted",
        ws / "certs" / "issuing.pem",
        device_pem,
    )


def write_pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.fixture
def ca_settings(tmp_path: Path) -> Settings:
    return load_settings(
        tmp_path / "ws", public_url="http://ca.test:8470", organization="Acme Devices"
    )


@pytest.fixture
def file_ca(ca_settings: Settings) -> FactoryCa:
    return init_workspace_ca(ca_settings, now=datetime.now(UTC))


def issue(ca: FactoryCa, serial: str = "BRS-000001") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return ca.issue_device(
        public_key=key.public_key(),
        product_serial=serial,
        chip_id=f"CHIP-{serial}",
        now=datetime.now(UTC),
    )


def test_openssl_verifies_device_certificates_from_a_file_key(
    file_ca: FactoryCa, ca_settings: Settings, tmp_path: Path
) -> None:
    for i in range(3):
        device = write_pem(tmp_path / f"device{i}.pem", issue(file_ca, f"BRS-00000{i}"))
        done = openssl_verify(ca_settings.ws.root, device)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == f"{device}: OK"


def test_a_reloaded_ca_issues_certificates_openssl_accepts(
    file_ca: FactoryCa, ca_settings: Settings, tmp_path: Path
) -> None:
    reloaded = load_factory_ca(ca_settings)
    assert reloaded.root_cert == file_ca.root_cert
    assert reloaded.issuing_cert == file_ca.issuing_cert
    device = write_pem(tmp_path / "device.pem", issue(reloaded))
    done = openssl_verify(ca_settings.ws.root, device)
    assert done.returncode == 0, done.stderr


def test_openssl_shows_the_profile(file_ca: FactoryCa, tmp_path: Path) -> None:
    device = write_pem(tmp_path / "device.pem", issue(file_ca, "BRS-000777"))

    text = openssl("x509", "-in", device, "-noout", "-text").stdout

    assert "othername" in text.lower()
    assert "1.3.6.1.5.5.7.8.4" in text  # hardwareModuleName
    assert "Not After : Dec 31 23:59:59 9999 GMT" in text
    assert (
        "Subject: O = Acme Devices, CN = BR-SENSOR-1 BRS-000777, serialNumber = BRS-000777" in text
    )
    assert "CA:FALSE" in text
    assert "Digital Signature, Key Agreement" in text
    assert "URI:http://ca.test:8470/crl/issuing.crl" in text
    assert "OCSP - URI:http://ca.test:8470/ocsp" in text
    assert "ecdsa-with-SHA256" in text
    assert "NIST CURVE: P-256" in text


def test_openssl_parses_the_hardware_module_name(file_ca: FactoryCa, tmp_path: Path) -> None:
    cert = issue(file_ca, "BRS-000778")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    ext_der = tmp_path / "san.der"
    ext_der.write_bytes(san.value.public_bytes())

    parsed = openssl("asn1parse", "-inform", "DER", "-in", ext_der, "-i").stdout

    assert ":1.3.6.1.5.5.7.8.4" in parsed
    assert ":1.3.6.1.4.1.55555.1.1" in parsed  # the hardware type OID, decoded by openssl
    assert "OCTET STRING      :CHIP-BRS-000778" in parsed
    assert parse_hardware_module_name(cert)[1] == "CHIP-BRS-000778"


def test_ca_certificates_carry_the_ca_profile(file_ca: FactoryCa, ca_settings: Settings) -> None:
    root = openssl("x509", "-in", ca_settings.ws.certs_dir / "root.pem", "-noout", "-text").stdout
    issuing_pem = ca_settings.ws.certs_dir / "issuing.pem"
    issuing = openssl("x509", "-in", issuing_pem, "-noout", "-text").stdout
    assert "CA:TRUE" in root
    assert "CA:TRUE, pathlen:0" in issuing
    for text in (root, issuing):
        assert "X509v3 Basic Constraints: critical" in text
        assert "X509v3 Key Usage: critical" in text
        assert "Certificate Sign, CRL Sign" in text
    done = openssl(
        "verify", "-x509_strict", "-CAfile", ca_settings.ws.certs_dir / "root.pem", issuing_pem
    )
    assert done.returncode == 0, done.stderr


def test_a_certificate_from_a_foreign_ca_is_refused(
    file_ca: FactoryCa, ca_settings: Settings, tmp_path: Path
) -> None:
    foreign_settings = load_settings(tmp_path / "foreign", organization="Acme Devices")
    foreign = init_workspace_ca(foreign_settings, now=datetime.now(UTC))
    forged = issue(foreign)
    forged_pem = write_pem(tmp_path / "forged.pem", forged)

    with pytest.raises(ChainUntrusted):
        file_ca.verify_chain(forged, [foreign.issuing_cert], datetime.now(UTC))
    done = openssl_verify(ca_settings.ws.root, forged_pem)
    assert done.returncode != 0
    assert "OK" not in done.stdout


# -- the issuing key in a SoftHSM2 token ----------------------------------------------------

PKCS11_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    from birthright.ca.authority import init_workspace_ca, load_factory_ca
    from birthright.errors import DeviceError
    from birthright.se.signer import ExternalKeySigner
    from birthright.settings import load_settings

    ws, mode, serial = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    settings = load_settings(ws, ca_key_storage="pkcs11", organization="Acme Devices")
    now = datetime.now(UTC)
    ca = init_workspace_ca(settings, now=now) if mode == "init" else load_factory_ca(settings)
    assert isinstance(ca.issuing_key, ExternalKeySigner), type(ca.issuing_key)
    try:
        ca.issuing_key.private_numbers()
    except DeviceError:
        print("non-exportable")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue_device(
        public_key=key.public_key(), product_serial=serial, chip_id="CHIP-" + serial, now=now
    )
    ca.verify_chain(cert, [ca.issuing_cert], now)
    (ws / (serial + ".pem")).write_bytes(cert.public_bytes(Encoding.PEM))
    ca.close()
    print("issued", serial)
    """
)


def run_pkcs11(ws: Path, mode: str, serial: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PKCS11_SCRIPT, str(ws), mode, serial],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_softhsm2
def test_openssl_verifies_certificates_signed_by_a_token_key(tmp_path: Path) -> None:
    ws = tmp_path / "ws"

    first = run_pkcs11(ws, "init", "BRS-000001")
    second = run_pkcs11(ws, "load", "BRS-000002")  # a fresh process reopens the token key

    assert "non-exportable" in first
    assert "issued BRS-000002" in second
    assert (ws / "hsm" / "softhsm2.conf").is_file()
    assert not (ws / "ca" / "issuing-key.pem").exists()  # the issuing key is only on the token
    for serial in ("BRS-000001", "BRS-000002"):
        done = openssl_verify(ws, ws / f"{serial}.pem")
        assert done.returncode == 0, done.stdout + done.stderr
