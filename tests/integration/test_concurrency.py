"""Three service processes on one PostgreSQL, 60 stations at once: no duplicate serial, no
quota overrun, every acknowledged certificate recorded, a nonce accepted once across all
processes. Latency is printed (``make bench`` runs the longer measurement), never asserted."""

from __future__ import annotations

import pytest
from bench.concurrency import measure

pytestmark = pytest.mark.postgres


def test_sixty_stations_on_three_processes_hold_the_cap_and_single_use_nonces(
    postgres_url: str,
) -> None:
    """60 stations × 3 units against a cap of 100: exactly 100 issued, the rest refused."""
    stations, units, cap = 60, 3, 100
    result = measure(postgres_url, processes=3, stations=stations, units=units, cap=cap)
    print(result)
    assert result["issued"] == min(cap, stations * units)
    answers = result["answers"]
    assert isinstance(answers, dict)
    assert not [a for a in answers if a.startswith("5")], answers
    race = result["nonce_race"]
    assert isinstance(race, dict)
    assert race.get("pass") == 1, race
    assert set(race) == {"pass", "nonce.replayed"}, race
