"""Operational certificates over HTTP, for SoftHSM2 and swtpm devices: issued for a fresh
proof signed on chip, renewed when due, refused to revoked devices, replays and other keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID
from typer.testing import CliRunner

from birthright.ca.authority import FactoryCa
from birthright.cli.main import app as main_app
from birthright.device.operational import renew_if_due, request_operational_cert
from birthright.device.sealing import device_serial
from birthright.revocation.model import Reason
from birthright.se.sim import DeviceSet
from birthright.se.swtpm import power_on
from birthright.station.client import BackendUntrusting
from tests.conftest import ServedBackend
from tests.integration import test_seal_api as seal_api
from tests.integration.test_seal_api import _provision_token, _provision_tpm, counts

served = seal_api.served  # the same fixtures: a backend trusting both simulated chip makers
tpm_dir = seal_api.tpm_dir


def _check_operational(cert: x509.Certificate, served: ServedBackend, key: object) -> None:
    ca = served.backend.operational.ca_cert
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == key
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= timedelta(days=7, minutes=5)


def test_a_token_device_trades_its_factory_proof_and_renews_when_due(
    served: ServedBackend, sim_device_set: DeviceSet, factory_ca: FactoryCa
) -> None:
    label = _provision_token(served, sim_device_set)
    with sim_device_set.open(label) as se:
        cert = request_operational_cert(se, served.url)
        _check_operational(cert, served, se.identity_public_key())
        assert cert.issuer != factory_ca.issuing_cert.subject  # a separate CA
        [name] = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        assert name.value == device_serial(se)
        now = datetime.now(UTC)
        assert renew_if_due(se, cert, served.url, now=now) is cert
        due = cert.not_valid_after_utc - timedelta(days=1)
        renewed = renew_if_due(se, cert, served.url, now=due)
        assert renewed.serial_number != cert.serial_number
        _check_operational(renewed, served, se.identity_public_key())


def test_a_tpm_device_gets_one_signed_in_the_tpm(served: ServedBackend, tpm_dir: Path) -> None:
    label = _provision_tpm(served, tpm_dir)
    with power_on(tpm_dir, label) as se:
        _check_operational(
            request_operational_cert(se, served.url), served, se.identity_public_key()
        )


def _csr(signer: ec.EllipticCurvePrivateKey, serial: str, nonce: str) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, nonce.encode())
        .sign(signer, hashes.SHA256())
        .public_bytes(Encoding.PEM)
        .decode()
    )


def _nonce(served: ServedBackend, serial: str) -> str:
    r = httpx.post(f"{served.url}/v1/attestations/challenges", json={"serial": serial})
    return str(r.json()["nonce"])


def _post(served: ServedBackend, csr: str) -> httpx.Response:
    return httpx.post(f"{served.url}/v1/operational-certificates", json={"csr": csr})


@pytest.mark.parametrize(
    "case", ["revoked", "replayed", "other_key", "unknown", "no_nonce", "device_auth_nonce"]
)
def test_refusals_grant_nothing_and_write_only_their_audit_record(
    served: ServedBackend, sim_device_set: DeviceSet, case: str
) -> None:
    label = _provision_token(served, sim_device_set)
    with sim_device_set.open(label) as se:
        serial = device_serial(se)
        signer = se.identity_signer()
        if case == "revoked":
            served.backend.revocation.revoke(serial, Reason.keyCompromise)
        csr = _csr(signer, serial, _nonce(served, serial))
        if case == "replayed":
            assert _post(served, csr).status_code == 201
        elif case == "other_key":
            csr = _csr(ec.generate_private_key(ec.SECP256R1()), serial, _nonce(served, serial))
        elif case == "unknown":
            csr = _csr(signer, "NO-SUCH-UNIT", "made-up-nonce")
        elif case == "device_auth_nonce":
            nonce = httpx.post(
                f"{served.url}/v1/device-auth/challenges", json={"serial": serial}
            ).json()["nonce"]
            csr = _csr(signer, serial, nonce)
        elif case == "no_nonce":
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
                .sign(signer, hashes.SHA256())
                .public_bytes(Encoding.PEM)
                .decode()
            )
        before = counts(served)
        r = _post(served, csr)
    expected = {
        "revoked": (403, "device_revoked"),
        "replayed": (403, "nonce_replayed"),
        "other_key": (403, "key_mismatch"),
        "unknown": (404, "device_unknown"),
        "no_nonce": (400, "csr_no_challenge"),
        "device_auth_nonce": (403, "nonce_wrong_purpose"),
    }[case]
    assert (r.status_code, r.json()["code"]) == expected
    assert counts(served) == {**before, "audit_events": before["audit_events"] + 1}


def test_a_revoked_device_cannot_renew(served: ServedBackend, sim_device_set: DeviceSet) -> None:
    label = _provision_token(served, sim_device_set)
    with sim_device_set.open(label) as se:
        cert = request_operational_cert(se, served.url)
        served.backend.revocation.revoke(device_serial(se), Reason.keyCompromise)
        due = cert.not_valid_after_utc - timedelta(hours=1)
        with pytest.raises(BackendUntrusting) as refused:
            renew_if_due(se, cert, served.url, now=due)
    assert refused.value.code == "device_revoked"


def test_the_cli_gets_then_keeps_an_operational_certificate(
    served: ServedBackend, sim_device_set: DeviceSet, tmp_path: Path
) -> None:
    label = _provision_token(served, sim_device_set)
    pin_file, out = tmp_path / "pin", tmp_path / "op.pem"
    pin_file.write_text(sim_device_set.pin)
    argv = ["opcert", "renew", "--devices", str(sim_device_set.directory), "--label", label,
            "--server", served.url, "--out", str(out), "--pin-file", str(pin_file)]  # fmt: skip
    try:
        first = CliRunner().invoke(main_app, argv)
        again = CliRunner().invoke(main_app, argv)
    finally:
        pin_file.unlink()
    assert first.exit_code == 0, first.output
    assert "new operational certificate" in first.output
    assert again.exit_code == 0 and "current certificate valid" in again.output
    x509.load_pem_x509_certificate(out.read_bytes()).verify_directly_issued_by(
        served.backend.operational.ca_cert
    )
