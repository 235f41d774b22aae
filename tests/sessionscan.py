"""After the whole suite: look for private keys, PINs and passphrases where none may be.

A pytest plugin (loaded by ``tests/conftest.py``). At session end it scans every test's
temporary folder (workspaces, service and station logs, journals, SQLite databases, device
folders), the PostgreSQL test database, and any core dumps, for PEM/DER private key
structures and the known test secrets: the fixtures' PINs and every workspace's generated
passphrases and PINs (each found in its ``secrets/`` folder, the one place it may be). A
finding fails the session and is printed with the file it was found in.

Where key material is the point of a file, it is skipped by name: the ``secrets/`` folders
themselves, SoftHSM2 token stores (encrypted by the token), and the fixtures that write test
keys on purpose (see ``INTENDED``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.leakscan import scan_bytes

#: PINs the fixtures use (tests/integration/conftest.py, station and sim tests).
KNOWN_SECRETS = ("test-user-pin", "test-so-pin", "crash-test-pin-1234", "sim-pin-1234")
#: Folder names whose content is secret by design (never scanned for their own secrets), and
#: the folder the scanner's own tests plant leaks in.
SECRET_FOLDERS = frozenset({"secrets", "tokens"})
PLANTED = "planted-leaks"
#: Files that hold test key material on purpose: name fragments (``device-pin``: a simulated
#: device folder's PIN file, mode 0600, its one home).
INTENDED = ("leak", "vendor-ca-key", "rogue", "foreign", "software-key", "device-pin")
#: Tests that write a plaintext key on purpose, to see it refused: their temp folder prefixes.
INTENDED_TESTS = ("test_a_plaintext_key_file_is_r",)
CORE_NAMES = ("core",)
#: ``core`` or ``core.<pid>``: not ``core.py`` and friends in installed packages.
CORE_DUMP_NAME = re.compile(r"^core(\.\d+)?$")
ENV = "BIRTHRIGHT_LEAK_SCAN"  # "0" switches the scan off (e.g. a quick local -k run)


def _is_secret_folder(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(part in SECRET_FOLDERS for part in parts[:-1]) or (
        PLANTED in parts and PLANTED not in root.parts
    )


def collect_secrets(root: Path) -> list[str]:
    found = set(KNOWN_SECRETS)
    for folder in root.rglob("secrets"):
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file():
                    value = f.read_text(errors="replace").strip()
                    if len(value) >= 12:
                        found.add(value)
    return sorted(found)


def scan_folder(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    leaks: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if (
            not path.is_file()
            or path.is_symlink()
            or _is_secret_folder(path, root)
            or any(k in path.name for k in INTENDED)
            or path.relative_to(root).parts[0].startswith(INTENDED_TESTS)
        ):
            continue
        hits = scan_bytes(path.read_bytes(), secrets)
        if hits:
            leaks[str(path)] = hits
    return leaks


def scan_postgres(url: str, secrets: list[str]) -> dict[str, list[str]]:
    from birthright.db.engine import make_engine

    engine = make_engine(url)
    leaks: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                rows = conn.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608 - our tables
                blob = b"\n".join(
                    bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                    for row in rows
                    for v in row
                )
                hits = scan_bytes(blob, secrets)
                if hits:
                    leaks[f"postgresql table {table}"] = hits
    finally:
        engine.dispose()
    return leaks


def core_dumps(roots: list[Path]) -> list[Path]:
    return [
        p
        for root in roots
        if root.is_dir()
        for p in root.rglob("core*")
        if p.is_file()
        and CORE_DUMP_NAME.match(p.name) is not None
        and (PLANTED not in p.parts or PLANTED in root.parts)
    ]


def session_leaks(basetemp: Path, pg_url: str | None) -> dict[str, list[str]]:
    secrets = collect_secrets(basetemp)
    leaks = scan_folder(basetemp, secrets)
    if pg_url:
        leaks.update(scan_postgres(pg_url, secrets))
    for core in core_dumps([basetemp, Path.cwd()]):
        leaks[str(core)] = ["a core dump", *scan_bytes(core.read_bytes(), secrets)]
    return leaks


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get(ENV) == "0" or not hasattr(session.config, "_tmp_path_factory"):
        return
    basetemp = session.config._tmp_path_factory.getbasetemp()
    leaks = session_leaks(basetemp, os.environ.get("BIRTHRIGHT_TEST_DATABASE_URL"))
    session.config.stash[LEAKS] = leaks
    if leaks:
        session.exitstatus = 1


LEAKS = pytest.StashKey[dict[str, list[str]]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    leaks = terminalreporter.config.stash.get(LEAKS, None)
    if leaks is None:
        return
    terminalreporter.section("leak scan")
    for where, what in sorted(leaks.items()):
        terminalreporter.write_line(f"LEAK {where}: {', '.join(what)}")
    terminalreporter.write_line(
        f"leak scan: {len(leaks)} finding(s) in temp folders, databases and core dumps"
    )
