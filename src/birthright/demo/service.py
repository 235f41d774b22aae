"""Run ``birthright serve`` as a child process and wait until it answers."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from birthright.errors import TransientError
from birthright.workspace import Workspace


class ServiceProcess:
    """``birthright <command> --workspace WS [args]`` (default: ``serve``), up once it answers
    ``/healthz``."""

    def __init__(
        self,
        ws: Workspace,
        url: str,
        *,
        ca_file: Path | None = None,
        start_timeout: float = 30.0,
        command: tuple[str, ...] = ("serve",),
    ) -> None:
        self.ws = ws
        self.url = url
        self._command = command
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        )
        self._timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        self.ws.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.ws.log_dir / f"{self._command[0]}.out"
        out = log.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "birthright.cli.main",
                self._command[0],
                "--workspace",
                str(self.ws.root),
                *self._command[1:],
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise TransientError(
                    f"the service exited at start; see {log}", code="service_failed"
                )
            try:
                health = httpx.get(f"{self.url}/healthz", timeout=1, verify=self._verify)
                if health.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TransientError("the service did not answer in time", code="service_failed")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
