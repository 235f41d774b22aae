"""A throwaway PostgreSQL server of the test's own (initdb + pg_ctl into a temporary folder, on
a free port), so a test may stop, crash and restart it without touching anyone else's."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries installed (Debian layout), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class ThrowawayPostgres:
    def __init__(self, root: Path, port: int) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bindir
        self.port = port
        self.data = root / "pgdata"
        self.sockets = root / "pgsock"
        self.log = root / "postgres.log"
        # initdb refuses root: run the server as the system's postgres user when we are root.
        self.user = "postgres" if os.geteuid() == 0 else None
        for d in (root, self.sockets):
            d.mkdir(parents=True, exist_ok=True)
        if self.user:
            record = pwd.getpwnam(self.user)
            for path in (root, self.sockets):
                os.chown(path, record.pw_uid, record.pw_gid)
        self.log.touch()
        if self.user:
            shutil.chown(self.log, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=on -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop without a clean shutdown (as on a power cut): recovery replays the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
