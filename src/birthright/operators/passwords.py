"""Password policy and hashing (Argon2id via argon2-cffi, ADR 0013).

Only the encoded hash (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) is ever stored; the
parameters travel inside it, so stronger ones later rehash on the next good login.
"""

from __future__ import annotations

from functools import cache

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from birthright.errors import InputError

MIN_LENGTH = 12
MAX_LENGTH = 256

#: RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes): tens of milliseconds.
_HASHER = argon2.PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)


def check_policy(password: str, *, name: str) -> None:
    """Refuse a password that is too short, too long, or the account name itself."""
    if len(password) < MIN_LENGTH:
        raise InputError(
            f"a password needs at least {MIN_LENGTH} characters", code="password_too_short"
        )
    if len(password) > MAX_LENGTH:
        raise InputError(
            f"a password has at most {MAX_LENGTH} characters", code="password_too_long"
        )
    if name.lower() in password.lower():
        raise InputError("a password must not contain the account name", code="password_weak")
    if len(set(password)) < 5:
        raise InputError("a password needs more distinct characters", code="password_weak")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(encoded: str, password: str) -> bool:
    """True when ``password`` matches; False on a mismatch or an unreadable hash."""
    try:
        return _HASHER.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    try:
        return _HASHER.check_needs_rehash(encoded)
    except InvalidHashError:
        return True


@cache
def dummy_hash() -> str:
    """Verified against when the account does not exist, so an unknown name costs the same."""
    return _HASHER.hash("an account that does not exist")
