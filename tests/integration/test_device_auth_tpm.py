"""Device authentication with the identity key inside a real swtpm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from birthright.device.auth import authenticate, chain_pem, sign_token
from birthright.se.swtpm import power_on
from birthright.station.client import BackendClient, BackendRefused, BackendUntrusting
from tests.conftest import ServedBackend
from tests.integration.test_tpm import backend as backend
from tests.integration.test_tpm import make_tpms, provision
from tests.integration.test_tpm import served as served
from tests.integration.test_tpm import tpm_dir as tpm_dir


def test_a_tpm_device_authenticates_and_each_refusal_has_its_code(
    served: ServedBackend, backend: BackendClient, tpm_dir: Path
) -> None:
    [label] = make_tpms(tpm_dir)
    outcome = provision(tpm_dir, backend, label)
    assert outcome.ok, outcome.reason
    with power_on(tpm_dir, label) as se:
        session = authenticate(se, backend, now=datetime.now(UTC))
        assert session["serial"] == outcome.serial
        # replayed: the same token twice
        nonce, audience = backend.device_auth_challenge(outcome.serial)
        token = sign_token(se, nonce=nonce, audience=audience, now=datetime.now(UTC))
        backend.device_authenticate(token=token, chain_pem=chain_pem(se))
        with pytest.raises(BackendRefused) as refused:
            backend.device_authenticate(token=token, chain_pem=chain_pem(se))
        assert refused.value.code == "device_auth_replayed"
        # expired
        nonce, audience = backend.device_auth_challenge(outcome.serial)
        old = datetime.now(UTC) - timedelta(minutes=4)
        token = sign_token(se, nonce=nonce, audience=audience, now=old)
        with pytest.raises(BackendRefused) as refused:
            backend.device_authenticate(token=token, chain_pem=chain_pem(se))
        assert refused.value.code == "device_auth_expired"
        # revoked
        httpx.post(
            f"{served.url}/v1/revocations",
            json={"serial": outcome.serial, "reason": "keyCompromise"},
            headers=served.auth,
        ).raise_for_status()
        with pytest.raises(BackendUntrusting) as untrusted:
            authenticate(se, backend, now=datetime.now(UTC))
        assert untrusted.value.code == "device_revoked"
