"""Simulated TPM 2.0 chips: one swtpm state per device, manufactured with a vendor EK cert.

A device folder ``DIR`` holds, for TPM devices:

- ``tpm/<label>/`` — the TPM's persistent state (swtpm's ``tpm2-00.permall``);
- ``tpm-vendor-ca/`` — the simulated TPM maker: ``root.pem`` (what an operator trusts with
  ``birthright ca trust-tpm-vendor``), its encrypted key, ``passphrase`` (0600) and the
  swtpm_localca configuration that signs each chip's EK certificate at manufacture.

A chip is "powered on" by starting ``swtpm`` on a private unix socket (DESIGN §6: TCP ports
collide with the kernel's client ports) with ``startup-clear``, so its PCRs start from reset,
as after a real boot; it is powered off by terminating the process.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from birthright.ca.keys import atomic_write
from birthright.errors import ConfigError, DeviceError
from birthright.se.tpm import TpmSecureElement
from birthright.se.vendor import create_vendor_ca
from birthright.workspace import read_secret_file

TPM_DIR = "tpm"
TPM_VENDOR_DIR = "tpm-vendor-ca"
ROGUE_VENDOR_DIR = "tpm-rogue-vendor-ca"
TPM_VENDOR_NAME = "Simulated TPM Vendor"
_START_TIMEOUT = 10.0
_CONNECT_ATTEMPTS = 100
_PR_SET_PDEATHSIG = 1


def tpm_vendor_dir(devices_dir: Path) -> Path:
    return devices_dir / TPM_VENDOR_DIR


def tpm_vendor_root_file(devices_dir: Path) -> Path:
    """The simulated TPM maker's root certificate (what the backend is told to trust)."""
    return tpm_vendor_dir(devices_dir) / "root.pem"


def tpm_state_dir(devices_dir: Path, label: str) -> Path:
    return devices_dir / TPM_DIR / label


def require_swtpm() -> None:
    missing = [t for t in ("swtpm", "swtpm_setup", "swtpm_localca") if shutil.which(t) is None]
    if missing:
        raise ConfigError(
            f"simulated TPMs need {', '.join(missing)} (Debian packages swtpm, swtpm-tools); "
            "run `make setup`"
        )


def _ensure_vendor(folder: Path) -> Path:
    """A TPM maker's CA in ``folder`` and the swtpm_setup configuration using it; made once."""
    setup_conf = folder / "swtpm_setup.conf"
    if setup_conf.exists():
        return setup_conf
    create_vendor_ca(folder, name=TPM_VENDOR_NAME, common_name=f"{TPM_VENDOR_NAME} EK Root")
    passphrase = read_secret_file(folder / "passphrase")
    atomic_write(folder / "certserial", b"1")  # no trailing newline, or numbering restarts
    atomic_write(
        folder / "swtpm-localca.conf",
        (
            f"statedir = {folder.resolve()}\n"
            f"signingkey = {(folder / 'root-key.pem').resolve()}\n"
            f"signingkey_password = {passphrase}\n"
            f"issuercert = {(folder / 'root.pem').resolve()}\n"
            f"certserial = {(folder / 'certserial').resolve()}\n"
        ).encode(),
    )
    atomic_write(
        folder / "swtpm-localca.options",
        b"--tpm-manufacturer id:00001014\n--tpm-model swtpm\n--tpm-version id:20191023\n",
    )
    atomic_write(
        setup_conf,
        (
            "create_certs_tool = /usr/bin/swtpm_localca\n"
            f"create_certs_tool_config = {(folder / 'swtpm-localca.conf').resolve()}\n"
            f"create_certs_tool_options = {(folder / 'swtpm-localca.options').resolve()}\n"
            "active_pcr_banks = sha256\n"
        ).encode(),
    )
    return setup_conf


def manufacture_tpm(devices_dir: Path, label: str, *, genuine: bool = True) -> None:
    """Make a new TPM chip's state: endorsement keys and their certificates in NV, from the
    folder's TPM vendor — or, not ``genuine``, from a rogue maker nobody trusts (a
    counterfeit part)."""
    require_swtpm()
    state = tpm_state_dir(devices_dir, label)
    state.mkdir(parents=True, exist_ok=False, mode=0o700)
    vendor = devices_dir / (TPM_VENDOR_DIR if genuine else ROGUE_VENDOR_DIR)
    command = ["swtpm_setup", "--tpm2", "--tpm-state", str(state), "--create-ek-cert"]
    command += ["--config", str(_ensure_vendor(vendor))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        shutil.rmtree(state, ignore_errors=True)
        raise DeviceError(f"swtpm_setup failed for {label}: {done.stderr.strip()[-300:]}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class PoweredTpm:
    """A running swtpm for one device's state; ``close()`` powers it off."""

    def __init__(self, state_dir: Path) -> None:
        require_swtpm()
        if not (state_dir / "tpm2-00.permall").exists():
            raise DeviceError(f"{state_dir} holds no TPM state", code="token_not_found")
        # unix socket paths are limited to 108 bytes: keep them short, outside the workspace
        self._run_dir = Path(tempfile.mkdtemp(prefix="br-tpm-"))
        socket = self._run_dir / "tpm"
        self.tcti = f"swtpm:path={socket}"
        self._process = subprocess.Popen(
            [
                "swtpm",
                "socket",
                "--tpm2",
                "--tpmstate",
                f"dir={state_dir.resolve()}",
                "--server",
                f"type=unixio,path={socket}",
                "--ctrl",
                f"type=unixio,path={socket}.ctrl",
                "--flags",
                "not-need-init,startup-clear",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # no threads start before exec
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not (socket.exists() and Path(f"{socket}.ctrl").exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise DeviceError(f"swtpm did not start for {state_dir}", code="tpm_unreachable")
            time.sleep(0.002)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._run_dir, ignore_errors=True)


def power_on(devices_dir: Path, label: str) -> TpmSecureElement:
    """Start a simulated TPM device and open its secure element; closing it powers it off."""
    tpm = PoweredTpm(tpm_state_dir(devices_dir, label))
    try:
        for _ in range(_CONNECT_ATTEMPTS):  # the socket exists a moment before it listens
            try:
                return TpmSecureElement.open(tpm.tcti, on_close=tpm.close)
            except DeviceError as e:
                if e.code != "tpm_unreachable":
                    raise
                time.sleep(0.005)
        return TpmSecureElement.open(tpm.tcti, on_close=tpm.close)
    except BaseException:
        tpm.close()
        raise
