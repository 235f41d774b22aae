"""Per-product enrollment policy hooks: a webhook asked before each issuance (ADR 0015)."""

from birthright.policyhook.model import (
    HookAnswer,
    HookConfig,
    HookQuery,
    PolicyHookRefused,
    PolicyHookUnavailable,
    answer_message,
    parse_answer,
)

__all__ = [
    "HookAnswer",
    "HookConfig",
    "HookQuery",
    "PolicyHookRefused",
    "PolicyHookUnavailable",
    "answer_message",
    "parse_answer",
]
