"""Identifiers: a short prefix, then time-ordered random characters (`s_01kc3v9x7w2b`)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id that sorts by creation time: 8 characters of milliseconds, 6 random."""
    return f"{prefix}_{_encode(time.time_ns() // 1_000_000, 9)}{_encode(secrets.randbits(30), 6)}"
