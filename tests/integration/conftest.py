"""Fixtures for in-process PKCS#11 against a real SoftHSM2.

SoftHSM2 reads ``SOFTHSM2_CONF`` once per process, in ``C_Initialize``, and a module can be
loaded only once per process: every in-process PKCS#11 test therefore shares the one
session-scoped SoftHSM2 folder ``softhsm_dir``, which is also a simulated-device folder
(``sim_device_set``). Tokens are initialised in-process (``create_token``; ``create_devices``
on ``sim_device_set.directory``), so they are visible without reloading the module. A test
that needs another configuration (another device folder, a CA token dir) runs in a subprocess.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from birthright.se.pkcs11 import create_token, load_module, write_softhsm2_conf
from birthright.se.sim import CONF_FILE, TOKEN_DIR, DeviceSet, open_device_set
from birthright.settings import SOFTHSM2_MODULE

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

TEST_PIN = "test-user-pin"
TEST_SO_PIN = "test-so-pin"
_labels = itertools.count()


def _require_softhsm2() -> None:
    missing = not os.path.exists(SOFTHSM2_MODULE) or shutil.which("softhsm2-util") is None
    if missing:
        message = "SoftHSM2 is not installed (Debian package softhsm2)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI a missing part is a failure, not a skip
        pytest.skip(message)


@pytest.fixture(scope="session")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private SoftHSM2 folder bound to this process: ``softhsm2.conf`` + ``tokens/``."""
    _require_softhsm2()
    directory = tmp_path_factory.mktemp("softhsm")
    conf = write_softhsm2_conf(directory / CONF_FILE, directory / TOKEN_DIR)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        yield directory


@pytest.fixture(scope="session")
def pkcs11_lib(softhsm_dir: Path) -> Pkcs11Lib:
    """This process's one wrapper of the SoftHSM2 module, configured by ``softhsm_dir``."""
    return load_module(SOFTHSM2_MODULE, softhsm2_conf=softhsm_dir / CONF_FILE)


@pytest.fixture(scope="session")
def sim_device_set(softhsm_dir: Path, pkcs11_lib: Pkcs11Lib) -> DeviceSet:
    """``softhsm_dir`` as a simulated-device folder (PIN ``TEST_PIN``); empty at first.

    Add devices with ``create_devices(sim_device_set.directory, n, pin=sim_device_set.pin,
    start_index=...)`` using a start index of your own, since the folder is shared.
    """
    return open_device_set(softhsm_dir, pin=TEST_PIN)


@dataclass(frozen=True)
class TestToken:
    __test__ = False  # not a test class, despite the name

    label: str
    pin: str


TokenFactory = Callable[[], TestToken]


@pytest.fixture
def new_token(pkcs11_lib: Pkcs11Lib) -> TokenFactory:
    """Make fresh, initialised tokens with unique labels (user PIN ``TEST_PIN``)."""

    def make() -> TestToken:
        label = f"test-{os.getpid()}-{next(_labels)}"
        create_token(pkcs11_lib, label=label, so_pin=TEST_SO_PIN, pin=TEST_PIN)
        return TestToken(label, TEST_PIN)

    return make


@pytest.fixture
def token(new_token: TokenFactory) -> TestToken:
    """One fresh token for this test."""
    return new_token()
