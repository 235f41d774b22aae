"""Verified attestations per second, next to ``cryptography``'s raw ECDSA verify rate.

The verifier runs in process, as the service runs it, against a real database: parse the EAT
(COSE_Sign1), consume the nonce (one write), verify the chain to the factory root, the
signature, status and firmware allow-list, sign the result (EAR) and record it (one write).
Two kinds of unit: a PKCS#11-style unit (key in software here: the chip's signing time is not
the verifier's) and a TPM 2.0 unit on swtpm, whose evidence also carries a PCR quote by its
AK. Nonces are issued and evidence is built before the clock starts.

    python -m bench.attest [--units N] [--rounds N]

SQLite by default; PostgreSQL when ``BIRTHRIGHT_BENCH_DATABASE_URL`` is set.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from bench.common import Figure, figure, once, print_table, record, reset_postgres

PRODUCT = "BENCH"
STATION = "st-bench"
WO = "WO-BENCH"
VERSION = "1.0.0"
IMAGE = b"bench firmware image\n" * 100
#: CPU ms per attestation of this process (the verifier; a PostgreSQL server's is not in it),
#: one entry per timed run, by kind of unit; read and cleared by ``measure_attestation``.
CPU_MS: dict[str, list[float]] = {}


def raw_verify_rate(n: int = 3000) -> float:
    """``cryptography`` alone, one core: ECDSA P-256 / SHA-256 verifications per second."""
    key = ec.generate_private_key(ec.SECP256R1())
    messages = [os.urandom(200) for _ in range(n)]
    signatures = [key.sign(m, ec.ECDSA(hashes.SHA256())) for m in messages]
    public = key.public_key()
    start = time.perf_counter()
    for m, s in zip(messages, signatures, strict=True):
        public.verify(s, m, ec.ECDSA(hashes.SHA256()))
    return n / (time.perf_counter() - start)


class Bench:
    """A workspace, a backend in process, a released firmware and enrolled units."""

    def __init__(self, root: Path, database_url: str | None) -> None:
        from birthright.ca.se_vendors import trust_se_vendor
        from birthright.ca.setup import init_workspace_pki
        from birthright.cli.firmware import publish, sign
        from birthright.db.migrate import upgrade
        from birthright.server.backend import build_backend
        from birthright.settings import load_settings, write_settings_file

        overrides = {"database_url": database_url} if database_url else {}
        self.settings = load_settings(root / "ws", tls=False, station_auth=False, **overrides)
        self.settings.ws.create()
        write_settings_file(self.settings, tuple(overrides))
        if database_url:
            reset_postgres(database_url)
        upgrade(self.settings.effective_database_url)
        init_workspace_pki(self.settings, now=datetime.now(UTC))
        image = root / "fw.bin"
        image.write_bytes(IMAGE)
        sign(
            image=image,
            product=PRODUCT,
            version=VERSION,
            security_version=1,
            workspace=self.settings.ws.root,
        )
        publish(manifest=root / "fw.bin.manifest.json", workspace=self.settings.ws.root)
        self.devices = root / "devices"
        from birthright.se.sim import create_devices
        from birthright.se.swtpm import tpm_vendor_root_file

        self.tpm_label = create_devices(self.devices, 1, pin="unused", kind="tpm")[0].label
        trust_se_vendor(self.settings.ws, tpm_vendor_root_file(self.devices).read_bytes())
        self.backend = build_backend(self.settings)
        self._open_line()

    def _open_line(self) -> None:
        from birthright.db.engine import make_sessionmaker
        from birthright.db.operations import WorkOrders
        from birthright.enrollment.model import WorkOrderSpec

        now = datetime.now(UTC)
        self.backend.operations.register_station(STATION, site="s1", line="l1", now=now)
        WorkOrders(make_sessionmaker(self.backend.engine)).open(
            WorkOrderSpec(
                WO,
                PRODUCT,
                "s1",
                "l1",
                100_000,
                "B",
                1,
                100_000,
                now - timedelta(minutes=1),
                now + timedelta(days=1),
            ),
            now=now,
        )

    def software_unit(self, i: int) -> tuple[str, ec.EllipticCurvePrivateKey, list[bytes]]:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        from birthright.enrollment.model import EnrollmentRequest
        from birthright.types import ChipId, ProductSerial, StationId

        key = ec.generate_private_key(ec.SECP256R1())
        chip = ChipId(f"BENCH{i:011d}")
        service = self.backend.enrollment
        serial = service.reserve_serial(StationId(STATION), chip, WO).serial
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
            .sign(key, hashes.SHA256())
        )
        result = service.enroll(
            EnrollmentRequest(
                StationId(STATION), WO, ProductSerial(serial), chip, csr.public_bytes(Encoding.DER)
            )
        )
        chain = [result.device.cert_der, *(c.public_bytes(Encoding.DER) for c in result.chain)]
        return serial, key, chain[:2]

    def close(self) -> None:
        self.backend.close()


def _eat(
    serial: str,
    nonce: str,
    sign: Callable[[bytes], bytes],
    quote: tuple[bytes, bytes] | None = None,
) -> bytes:
    from birthright.attest.eat import EatClaims, build_eat

    claims = EatClaims(
        nonce=nonce,
        serial=serial,
        firmware_version=VERSION,
        firmware_sha256=hashlib.sha256(IMAGE).digest(),
        issued_at=datetime.now(UTC),
        tpm_quote=quote,
    )
    return build_eat(claims, sign)


def _signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


def software_rate(
    bench: Bench, made: list[tuple[str, ec.EllipticCurvePrivateKey, list[bytes]]], rounds: int
) -> float:
    service = bench.backend.attestation
    batch = []
    for _ in range(rounds):
        for serial, key, chain in made:
            nonce = service.challenge(serial).nonce
            batch.append((_eat(serial, nonce, _signer(key)), chain))
    start, cpu = time.perf_counter(), time.process_time()
    for evidence, chain in batch:
        result = service.verify(evidence=evidence, chain=chain)
        assert result.status == "affirming", result.as_dict()
    CPU_MS.setdefault("software", []).append((time.process_time() - cpu) * 1000 / len(batch))
    return len(batch) / (time.perf_counter() - start)


def tpm_rate(bench: Bench, rounds: int) -> float:
    from birthright.device.agent import RunningFirmware, boot
    from birthright.enrollment.model import EnrollmentRequest
    from birthright.se.swtpm import power_on
    from birthright.station.provision import build_csr
    from birthright.types import ProductSerial, StationId

    service = bench.backend.attestation
    enrollment = bench.backend.enrollment
    station = StationId(STATION)
    with power_on(bench.devices, bench.tpm_label) as se:
        # the station's steps, in process: challenge, serial, key, CSR, proof, enroll
        challenge = enrollment.se_challenge(station, se.chip_id, WO, se.se_proof_request())
        serial = enrollment.reserve_serial(station, se.chip_id, WO).serial
        se.generate_identity_key()
        csr = build_csr(se, serial=serial)
        proof = se.answer_se_challenge(challenge)
        enrolled = enrollment.enroll(
            EnrollmentRequest(station, WO, ProductSerial(serial), se.chip_id, csr, proof)
        )
        assert enrolled.device.se_proof == "tpm"
        boot(se, RunningFirmware(VERSION, hashlib.sha256(IMAGE).digest()))
        chain = [enrolled.device.cert_der, enrolled.chain[0].public_bytes(Encoding.DER)]
        batch = []
        for _ in range(rounds):
            nonce = service.challenge(serial).nonce
            batch.append(_eat(serial, nonce, se.sign, se.quote(nonce)))
    start, cpu = time.perf_counter(), time.process_time()
    for evidence in batch:
        result = service.verify(evidence=evidence, chain=chain)
        assert result.status == "affirming", result.as_dict()
    CPU_MS.setdefault("tpm", []).append((time.process_time() - cpu) * 1000 / len(batch))
    return len(batch) / (time.perf_counter() - start)


Unit = tuple[str, ec.EllipticCurvePrivateKey, list[bytes]]
Measure = Callable[[Bench, list[Unit], argparse.Namespace, str, Figure], list[Figure]]


def run_on_databases(description: str, prefix: str, measure: Measure) -> None:
    """The shared frame of the verifier benchmarks: the raw verify rate, then ``measure`` on
    SQLite and, when ``BIRTHRIGHT_BENCH_DATABASE_URL`` is set, on PostgreSQL."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    databases: dict[str, str | None] = {"SQLite": None}
    if os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL"):
        databases["PostgreSQL"] = os.environ["BIRTHRIGHT_BENCH_DATABASE_URL"]
    raw = figure("raw ECDSA P-256 verify (cryptography, 1 core)", "verifies/s", raw_verify_rate)
    figures = [raw]
    for tag, database_url in databases.items():
        with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as tmp:
            bench = Bench(Path(tmp), database_url)
            try:
                units = [bench.software_unit(i) for i in range(args.units)]
                figures += measure(bench, units, args, tag, raw)
            finally:
                bench.close()
    print_table(figures)
    record(figures)


def measure_attestation(
    bench: Bench, units: list[Unit], args: argparse.Namespace, tag: str, raw: Figure
) -> list[Figure]:
    CPU_MS.clear()
    rates = [
        figure(
            f"verified EAT attestations, {tag}",
            "attestations/s",
            lambda: software_rate(bench, units, 2),
            runs=3,
            reference=("raw verify", raw.median),
            note="parse, nonce consume, chain, signature, status, allow-list, signed EAR, recorded",
        ),
        figure(
            f"verified TPM attestations (EAT + PCR quote), {tag}",
            "attestations/s",
            lambda: tpm_rate(bench, args.rounds * args.units // 2),
            runs=1,
            reference=("raw verify", raw.median),
            note="as above plus the quote: AK signature, nonce, PCR digest",
        ),
    ]
    cpu = [
        once(
            f"verifier CPU per {kind} attestation, {tag}",
            "ms",
            statistics.median(values),
            note="user + system time of this process ÷ attestations (database server not in it)",
        )
        for kind, values in sorted(CPU_MS.items())
    ]
    return rates + cpu


if __name__ == "__main__":
    run_on_databases(__doc__.splitlines()[0], "attest", measure_attestation)
