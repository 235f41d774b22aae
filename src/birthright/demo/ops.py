"""What an operator's dashboards see: /readyz and the highlights of /metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class OpsView:
    ready: str
    enrollments_issued: int
    refusals: Counter[str] = field(default_factory=Counter)
    attestations: Counter[str] = field(default_factory=Counter)
    ocsp: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    def refusal_summary(self, top: int = 6) -> str:
        return ", ".join(f"{code} {n}" for code, n in self.refusals.most_common(top)) or "none"


def observe(server: str, root_pem: Path) -> OpsView:
    with httpx.Client(base_url=server, verify=str(root_pem), timeout=10) as http:
        ready = http.get("/readyz")
        exposition = http.get("/metrics")
        exposition.raise_for_status()
    status = "ready" if ready.status_code == 200 else f"not ready ({ready.json().get('code')})"
    issued = 0
    refusals: Counter[str] = Counter()
    attestations: Counter[str] = Counter()
    ocsp: Counter[str] = Counter()
    requests = 0
    for family in text_string_to_metric_families(exposition.text):
        for s in family.samples:
            n = int(s.value)
            if s.name == "birthright_enrollments_total" and s.labels["outcome"] == "issued":
                issued += n
            elif s.name == "birthright_refusals_total":
                refusals[s.labels["code"]] += n
            elif s.name == "birthright_attestations_total":
                attestations[s.labels["verdict"]] += n
            elif s.name == "birthright_ocsp_answers_total":
                ocsp[s.labels["status"]] += n
            elif s.name == "birthright_http_request_duration_seconds_count":
                requests += n
    return OpsView(status, issued, +refusals, +attestations, +ocsp, requests)
