"""The red-team scenario suite: each row is an attack, the defence we expect, and the tests
that mount it against real parts. Loaded as a pytest plugin (``-p tests.redteam``): after the
run it prints what was tried and what held, and ends with ``N scenarios, N held``.

A scenario holds when every test run that mounts it passed (both databases, every step); a
scenario none of whose tests ran does not hold.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

import pytest


@dataclass
class Scenario:
    attack: str
    defence: str
    tests: tuple[str, ...]
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.passed > 0 and not self.failed


IT = "tests/integration/"
SCENARIOS = [
    Scenario(
        "cloned station (its disk copied to a second PC)",
        "counter fork detected, station suspended, critical alert",
        (
            IT + "test_station_identity.py::test_a_cloned_station_is_caught_as_a_counter_fork",
            IT + "test_station_identity.py::test_a_lower_unseen_counter_suspends_the_station",
        ),
    ),
    Scenario(
        "replayed enrollment request",
        "request_replayed; nothing written twice",
        (
            IT + "test_station_identity.py::test_replayed_request_is_refused_without_suspending",
            "tests/unit/test_enrollment_service.py::"
            "test_enroll_issues_once_and_retry_returns_the_same_certificate",
        ),
    ),
    Scenario(
        "stolen station certificate after revocation",
        "station_revoked at once",
        (
            IT + "test_station_identity.py::test_revoked_station_is_refused",
            IT + "test_station_status.py::test_a_revoked_station_is_refused",
        ),
    ),
    Scenario(
        "client certificate from a foreign CA",
        "TLS handshake refused",
        (IT + "test_station_identity.py::test_foreign_ca_and_device_certificates_fail",),
    ),
    Scenario(
        "unsigned or tampered station request",
        "signature_missing / signature_invalid",
        (
            IT + "test_station_identity.py::test_unsigned_request_is_refused",
            IT + "test_station_identity.py::test_tampered_body_is_refused",
            IT + "test_station_mtls_flow.py::test_an_unsigned_request",
        ),
    ),
    Scenario(
        "overrun of a work order by 60 concurrent stations on 2 processes",
        "exactly the cap minted; the rest quota_exhausted",
        (IT + "test_quota_race.py::",),
    ),
    Scenario(
        "one key in two units (shared default secret)",
        "key_shared + critical alert",
        (
            "tests/unit/test_enrollment_service.py::test_a_shared_key_is_a_security_event",
            IT + "test_enrollment_api.py::test_bad_input_gets_a_json_error_and_changes_nothing"
            "_but_the_audit_log[*-duplicate_key-*",
        ),
    ),
    Scenario(
        "CSR for another chip's serial",
        "serial_chip_mismatch",
        (
            IT + "test_enrollment_api.py::test_bad_input_gets_a_json_error_and_changes_nothing"
            "_but_the_audit_log[*-chip_of_another_serial-*",
        ),
    ),
    Scenario(
        "serial outside the station's work order or line",
        "serial_outside_work_order / work_order_wrong_line",
        (
            "tests/unit/test_enrollment_service.py::test_refusals_have_stable_codes_and_write"
            "_only_an_audit_record[serial_of_another_work_order]",
            "tests/unit/test_enrollment_service.py::test_refusals_have_stable_codes_and_write"
            "_only_an_audit_record[work_order_of_another_line]",
        ),
    ),
    Scenario(
        "counterfeit chip or software key where genuine SE is required",
        "se_not_genuine + critical alert; nothing issued",
        (
            IT + "test_genuine_se.py::test_a_counterfeit_chip_without_vendor_attestation",
            IT + "test_genuine_se.py::test_a_software_key_csr_is_refused_where_proof_is",
        ),
    ),
    Scenario(
        "forged vendor proof (rogue vendor CA, tampered, other key or chip)",
        "se_not_genuine, even where the proof is optional",
        (
            IT + "test_genuine_se.py::test_a_chip_attested_by_a_vendor_we_do_not_trust",
            IT + "test_genuine_se.py::test_a_tampered_or_misbound_proof_is_refused",
            "tests/unit/test_genuine_proof.py::test_a_forged_proof_is_refused_even_where",
        ),
    ),
    Scenario(
        "TPM from an untrusted maker, or a borrowed or forged TPM proof",
        "se_not_genuine before a serial is spent; nothing issued",
        (
            IT + "test_tpm.py::test_a_tpm_from_an_untrusted_maker_is_refused_se_not_genuine",
            IT + "test_tpm.py::test_a_forged_or_borrowed_tpm_proof_is_refused",
            IT + "test_tpm.py::test_a_challenge_for_another_chips_id_is_refused",
        ),
    ),
    Scenario(
        "TPM unit lying about its firmware (other image booted, stale quote, no quote)",
        "quote.pcr_mismatch / quote.nonce_mismatch / quote.missing: contraindicated",
        (
            IT + "test_tpm.py::test_a_tpm_unit_that_booted_other_firmware_cannot_claim",
            IT + "test_tpm.py::test_a_quote_made_for_another_nonce_is_refused",
            IT + "test_tpm.py::test_evidence_without_the_quote_from_a_tpm_unit_fails",
        ),
    ),
    Scenario(
        "CSR without proof of possession",
        "csr_signature_invalid",
        (
            IT + "test_enrollment_api.py::test_bad_input_gets_a_json_error_and_changes_nothing"
            "_but_the_audit_log[*-bad_signature-*",
        ),
    ),
    Scenario(
        "station killed at every step of a unit",
        "finished on restart; nothing doubled",
        (IT + "test_station_crash.py::test_station_killed_mid_unit",),
    ),
    Scenario(
        "attestation evidence replayed",
        "nonce.replayed",
        (IT + "test_attestation_api.py::test_a_reused_nonce_is_refused",),
    ),
    Scenario(
        "attestation with another device's chain or a self-made chain",
        "signature.invalid / chain.untrusted",
        (
            IT + "test_attestation_api.py::test_another_devices_chain_fails",
            IT + "test_attestation_api.py::test_a_self_made_chain_is_untrusted",
        ),
    ),
    Scenario(
        "revoked device attesting",
        "status.revoked at once; the rest keep attesting",
        (IT + "test_revocation_api.py::test_a_revoked_unit_fails_attestation_while_another",),
    ),
    Scenario(
        "recall that grows between preview and execute",
        "exactly the previewed set, or recall_stale",
        (
            IT + "test_revocation_api.py::test_a_recall_by_work_order_revokes_exactly",
            IT + "test_revocation_api.py::test_a_recall_whose_set_changed_is_refused_whole",
            IT + "test_recall_by_firmware.py::test_a_recall_by_firmware_version",
        ),
    ),
    Scenario(
        "firmware downgrade to a blocked version",
        "firmware.blocked / rolled-back image fails",
        (
            IT + "test_attestation_firmware.py::test_a_blocked_version_fails",
            IT + "test_attestation_firmware.py::test_a_softhsm2_chip_attests_its_firmware",
        ),
    ),
    Scenario(
        "forged firmware manifest",
        "manifest_signature_invalid; nothing stored",
        (IT + "test_attestation_firmware.py::test_a_forged_or_tampered_manifest",),
    ),
    Scenario(
        "smuggled units, missing units, double shipments, foreign chips",
        "named by the signed morning report",
        (IT + "test_reconcile.py::test_the_report_names_exactly",),
    ),
    Scenario(
        "hostile API input: every operation fuzzed from the OpenAPI, stateful sequences",
        "no 5xx, responses conform, JSON error codes, refusals write nothing",
        (IT + "test_api_fuzz.py::",),
    ),
    Scenario(
        "flood from one address or one station",
        "429 rate_limited with Retry-After; other stations go on",
        (
            IT + "test_limits.py::test_a_station_over_its_rate_gets_429",
            IT + "test_limits.py::test_an_address_over_its_rate_gets_429",
        ),
    ),
    Scenario(
        "oversized or endless request body",
        "413 body_too_large before the body is held in memory",
        (
            IT + "test_limits.py::test_an_endless_streamed_body_is_cut_off_with_413",
            IT + "test_limits.py::test_a_declared_oversized_body_is_refused",
        ),
    ),
    Scenario(
        "service killed with SIGKILL in the middle of a burst",
        "nothing acknowledged lost, nothing doubled, quota exact, audit verifies",
        (IT + "test_service_crash.py::test_service_killed_mid_burst",),
    ),
    Scenario(
        "database connections killed, PostgreSQL crashed and restarted mid-burst",
        "503 db_unavailable, never 500; recovers alone; nothing acknowledged lost",
        (IT + "test_database_faults.py::",),
    ),
    Scenario(
        "60 stations at once on 3 service processes; one nonce raced across them",
        "no duplicate serial, cap held, the nonce accepted exactly once",
        (IT + "test_concurrency.py::",),
    ),
    Scenario(
        "audit log edited, rows inserted or deleted, tail truncated",
        "audit verify names the first broken link",
        (
            IT + "test_audit_tamper.py::test_tampering_is_reported_at_its_seq",
            IT + "test_audit_tamper.py::test_truncation_with_rewound_head_is_caught",
        ),
    ),
    Scenario(
        "stolen serial label used to claim a warranty",
        "entitlement_wrong_device / device_untrusted / signature invalid; nothing granted",
        (
            IT + "test_entitlements_api.py::test_a_serial_read_off_a_label_cannot_claim",
            IT + "test_entitlements_api.py::test_no_token_or_a_forged_one_grants_nothing",
            IT + "test_device_auth_api.py::test_each_refusal_has_its_code_is_audited_and_grants"
            "_nothing[*stolen-label-other-chain]",
        ),
    ),
    Scenario(
        "revoked device authenticating (our service and a relying service)",
        "device_revoked at once, audited; the other units pass",
        (
            IT + "test_device_auth_api.py::test_a_revoked_device_is_refused_at_once",
            IT + "test_device_auth_api.py::test_a_softhsm2_chip_authenticates_then_is_refused",
            IT + "test_device_auth_tpm.py::",
            IT + "test_relying_middleware.py::test_a_live_unit_gets_in_and_its_token_serves",
        ),
    ),
    Scenario(
        "replayed, expired or foreign-CA device-auth token",
        "device_auth_replayed / device_auth_expired / device_untrusted, each audited",
        (IT + "test_device_auth_api.py::test_each_refusal_has_its_code_is_audited_and_grants",),
    ),
    Scenario(
        "EST enrollment without a station certificate, or past native-enrollment checks",
        "client_cert_required / key_shared / serial_not_reserved / est_se_proof_unsupported, "
        "each audited; a superseded or revoked unit cannot re-enroll",
        (
            IT + "test_est.py::test_transport_level_refusals",
            IT + "test_est.py::test_simpleenroll_refuses_what_native_enrollment_refuses",
            IT + "test_est.py::test_a_revoked_unit_cannot_reenroll",
            IT + "test_est.py::test_curl_and_openssl_enroll_verify_and_reenroll",
        ),
    ),
    Scenario(
        "forged, replayed, slow or missing policy-hook answer",
        "policy_hook_unavailable: the unit is refused (fail closed), only the audit record written",
        (
            IT + "test_policy_hook.py::test_no_valid_answer_in_time_refuses_the_unit",
            IT + "test_policy_hook.py::test_a_hook_trickling_its_answer",
        ),
    ),
    Scenario(
        "a nonce issued for one purpose used for another (device auth ↔ attestation)",
        "nonce.wrong_purpose / nonce_wrong_purpose; the nonce is not spent",
        (
            IT + "test_device_auth_api.py::test_attestation_refuses_a_device_auth_nonce",
            IT + "test_opcert.py::test_refusals_grant_nothing_and_write_only_their_audit_record"
            "[*device_auth_nonce]",
        ),
    ),
    Scenario(
        "an entitlement taken over by naming its owner, or with a spent transfer secret",
        "entitlement_not_owner / device_revoked, audited; the owner unchanged",
        (IT + "test_entitlements_api.py::test_a_transfer_needs_the_owners_current_secret",),
    ),
    Scenario(
        "forged or replayed revocation webhook; a receiver down during a revocation",
        "event_signature_invalid / event_stale; the event delivered on retry, same id",
        (
            IT + "test_event_webhooks.py::test_a_revocation_reaches_the_subscriber_signed",
            IT + "test_event_webhooks.py::test_a_receiver_that_was_down_gets_the_event",
            IT + "test_event_crash.py::",
            "tests/unit/test_events.py::test_a_signed_delivery_verifies_and_any_change_does_not",
        ),
    ),
]


def _scenario_for(nodeid: str) -> Scenario | None:
    """Tests are node-id prefixes, with ``*`` where a parameter id varies."""
    return next(
        (
            s
            for s in SCENARIOS
            if any(fnmatch.fnmatchcase(nodeid, t.replace("[", "[[]") + "*") for t in s.tests)
        ),
        None,
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    scenario = _scenario_for(report.nodeid)
    if scenario is None or report.skipped:
        return
    if report.failed:
        scenario.failed.append(report.nodeid)
    elif report.when == "call":
        scenario.passed += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tr = terminalreporter
    tr.section("red team")
    width = max(len(s.attack) for s in SCENARIOS)
    for s in SCENARIOS:
        result = "held" if s.held else ("FAILED" if s.failed else "not run")
        tr.write_line(f"{s.attack:<{width}}  {s.defence:<58}  {result} ({s.passed} runs)")
    held = sum(s.held for s in SCENARIOS)
    tr.write_line(f"{len(SCENARIOS)} scenarios, {held} held")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("BIRTHRIGHT_REDTEAM") and not all(s.held for s in SCENARIOS):
        session.exitstatus = 1


def redteam_node_ids() -> list[str]:
    """The test files the suite needs (``make redteam`` runs exactly these)."""
    return sorted({t.split("::")[0] for s in SCENARIOS for t in s.tests})


if __name__ == "__main__":
    print(" ".join(redteam_node_ids()))
