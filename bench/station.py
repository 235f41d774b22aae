"""Station overhead per unit: what the station adds around the chip's own work.

A real station (``birthright.station.provision.Station``, with its crash journal) provisions
real SoftHSM2 tokens against ``birthright serve`` over HTTPS with mutual TLS and signed
requests on 127.0.0.1: reserve a serial, have the chip make its key, build the CSR on chip,
enroll, check the certificate, write the chain into the chip, read it back, have the chip
prove possession. The time inside the chip's key generation and signing calls is measured
separately and taken out; what remains is the station's overhead: its round trips to the
backend (including the backend's work), request signing and counter, journal writes and the
certificate checks. Time inside the chip (key generation, signing, writing and reading its
objects) is reported on its own line; so are the CPU milliseconds the station process and the
service process spend per unit, which move less with other load on the machine than wall time.

    python -m bench.station [--units N] [--runs N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Figure, cpu_seconds, free_port, print_table, record, service_process
from bench.enroll import setup_workspace

PIN = "2468"


@dataclass
class SeClock:
    """Seconds spent inside calls into the secure element."""

    seconds: float = 0.0
    cpu: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)

    def wrap(self, obj: Any, name: str) -> None:
        inner: Callable[..., Any] = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.cpu += time.process_time() - cpu
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(obj, name, timed)

    def instrument(self, se: Any) -> Any:
        """Time every call into the SE: key generation, signing (also through the signer
        handed to the CSR builder), its objects written and read, the genuineness proof."""
        for name in (
            "generate_identity_key",
            "identity_public_key",
            "sign",
            "store_chain",
            "read_chain",
            "se_proof",
            "se_proof_request",
            "answer_se_challenge",
        ):
            if hasattr(type(se), name):
                self.wrap(se, name)
        handed_out = se.identity_signer

        def identity_signer() -> Any:
            signer = handed_out()
            self.wrap(signer, "sign")
            return signer

        se.identity_signer = identity_signer
        return se


def _provision_all(
    devices: Path, station_dir: Path, server: str, journal: Path, part: slice
) -> dict[str, Any]:
    """One station process: provision ``part`` of the devices in ``devices``; per-unit wall
    time, time inside the chip and CPU time outside it."""
    from birthright.se.sim import open_device_set
    from birthright.station.connect import station_client
    from birthright.station.identity import load_station_config
    from birthright.station.journal import Journal
    from birthright.station.provision import Station

    device_set = open_device_set(devices, pin=PIN)
    station_id = load_station_config(station_dir).station_id
    walls: list[float] = []
    chip: list[float] = []
    cpu: list[float] = []
    steps: dict[str, list[float]] = {}
    with station_client(station_dir, server) as backend:
        station = Station(
            station_id=station_id,
            work_order_id="WO-BENCH",
            backend=backend,
            journal=Journal(journal),
        )
        for device in device_set.devices()[part]:
            with device_set.open(device.label) as se:
                clock = SeClock()
                clock.instrument(se)
                start, cpu_start = time.perf_counter(), time.process_time()
                outcome = station.provision(se, label=device.label)
                walls.append(time.perf_counter() - start)
                cpu.append(time.process_time() - cpu_start - clock.cpu)
                chip.append(clock.seconds)
            if not outcome.ok or outcome.action != "enrolled":
                raise RuntimeError(f"{device.label}: {outcome.code} {outcome.reason}")
            for step, seconds in outcome.seconds.items():
                steps.setdefault(step, []).append(seconds)
    return {"wall": walls, "chip": chip, "cpu": cpu, "steps": steps}


def run(units: int, workdir: Path) -> dict[str, Any]:
    """One run, in a process of its own (see ``main``): the PKCS#11 module binds one SoftHSM2
    configuration per process, and each run makes a new one."""
    from birthright.se.sim import create_devices

    shutil.rmtree(workdir, ignore_errors=True)
    devices = workdir / "devices"
    create_devices(devices, units + 1, pin=PIN, vendor_attestation=False)
    ws = workdir / "ws"
    [station_dir] = setup_workspace(
        ws,
        database_url=f"sqlite:///{ws}/birthright.db",
        stations=1,
        quantity=units + 1,
        softhsm=devices,
        tag="ov",
    )
    with service_process(ws, free_port(), ca_file=ws / "ca" / "root.pem") as (url, proc):
        journal = workdir / "journal.db"
        # The first unit pays one-off costs (TLS handshake, first queries): not measured.
        _provision_all(devices, station_dir, url, journal, slice(0, 1))
        server_cpu = cpu_seconds(proc.pid)
        result = _provision_all(devices, station_dir, url, journal, slice(1, None))
        result["server_cpu"] = (cpu_seconds(proc.pid) - server_cpu) / units
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=40, help="units per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/birthright-bench/station"))
    args = parser.parse_args()
    per_run: list[dict[str, float]] = []
    for i in range(args.runs):
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            result = pool.submit(run, args.units, args.workdir / f"run-{i}").result()
        wall, chip = result["wall"], result["chip"]
        overhead = [(w - c) * 1000 for w, c in zip(wall, chip, strict=True)]
        per_run.append(
            {
                "overhead": statistics.median(overhead),
                "overhead_p95": statistics.quantiles(overhead, n=20)[-1],
                "chip": statistics.median(chip) * 1000,
                "station_cpu": statistics.median(result["cpu"]) * 1000,
                "server_cpu": result["server_cpu"] * 1000,
                "wall": statistics.median(wall) * 1000,
                **{
                    f"step {name}": statistics.median(values) * 1000
                    for name, values in result["steps"].items()
                },
            }
        )
    figures = []
    for key, name in (
        ("overhead", "station overhead per unit (wall, excl. time inside the chip), median"),
        ("overhead_p95", "station overhead per unit, p95"),
        ("chip", "time inside the chip per unit (SoftHSM2: keygen, signing, objects)"),
        ("station_cpu", "station process CPU per unit, outside the chip"),
        ("server_cpu", "service process CPU per unit (reserve + enroll)"),
        ("wall", "whole unit, station wall time, median"),
    ):
        values = [r[key] for r in per_run]
        figures.append(
            Figure(
                name,
                "ms",
                statistics.median(values),
                min(values),
                max(values),
                len(values),
                note="target ≤ 20 ms" if key == "overhead" else "",
            )
        )
    steps = sorted({k for r in per_run for k in r if k.startswith("step ")})
    for key in steps:
        values = [r[key] for r in per_run if key in r]
        figures.append(
            Figure(
                f"⤷ {key} (wall, incl. chip where the step uses it)",
                "ms",
                statistics.median(values),
                min(values),
                max(values),
                len(values),
            )
        )
    record(figures)
    print_table(figures)


if __name__ == "__main__":
    main()
