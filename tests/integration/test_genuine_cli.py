"""The genuine-SE commands as an operator runs them: chips with and without vendor
attestation, trusting the vendor's root, and the per-product policy (audited)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.db.audit import list_events
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.errors import InputError
from birthright.se.vendor import PASSPHRASE_FILE, ROOT_KEY, vendor_root_file
from tests.integration.test_ca_cli import cli, flat
from tests.leakscan import ENCRYPTED_PEM_HEADER


def test_sim_chips_trusted_vendor_and_product_policy_from_the_command_line(
    tmp_path: Path,
) -> None:
    devices, ws = tmp_path / "devices", tmp_path / "ws"
    made = cli("sim", "devices", "create", "2", "--dir", devices, "--pin", "sim-pin-1234")
    assert made.exit_code == 0, made.output
    assert "vendor attestation" in flat(made.output)
    fake = cli("sim", "devices", "create", "1", "--dir", devices, "--no-vendor-attestation")
    assert fake.exit_code == 0, fake.output
    vendor = vendor_root_file(devices).parent
    assert (vendor / ROOT_KEY).read_text().startswith(ENCRYPTED_PEM_HEADER)
    for name in (ROOT_KEY, PASSPHRASE_FILE):
        assert stat.S_IMODE((vendor / name).stat().st_mode) == 0o600

    ws.mkdir()
    assert cli("db", "upgrade", "-w", ws).exit_code == 0
    trusted = cli("ca", "trust-se-vendor", vendor_root_file(devices), "-w", ws)
    assert trusted.exit_code == 0, trusted.output
    assert "now trusted" in flat(trusted.output)
    assert "already trusted" in flat(
        cli("ca", "trust-se-vendor", vendor_root_file(devices), "-w", ws).output
    )
    assert "Simulated SE Vendor Attestation Root" in flat(cli("ca", "se-vendors", "-w", ws).output)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(_self_signed_end_entity().public_bytes(Encoding.PEM))
    refused = cli("ca", "trust-se-vendor", leaf, "-w", ws)
    assert isinstance(refused.exception, InputError)
    assert refused.exception.code == "se_vendor_root_invalid"

    required = cli("product", "require-genuine", "BR-X", "-w", ws)
    assert required.exit_code == 0, required.output
    assert "required" in flat(cli("product", "list", "-w", ws).output)
    assert "(unchanged)" in flat(cli("product", "require-genuine", "BR-X", "-w", ws).output)
    off = cli("product", "require-genuine", "BR-X", "--off", "-w", ws)
    assert "optional" in flat(off.output)

    engine = make_engine(f"sqlite:///{ws / 'birthright.db'}")
    events = [e.event for e in list_events(make_sessionmaker(engine))]
    engine.dispose()
    assert events == ["product.policy", "product.policy", "se_vendor.trusted"]


def _self_signed_end_entity() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a CA")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
