"""API tokens: each acts for one user; only a hash is stored, the token is shown once.

Tokens are 32 random bytes, so a plain SHA-256 of them cannot be guessed back; a slow
password hash would only slow every request down.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from keel.errors import ConfigError, NotFound
from keel.events import now_us
from keel.ids import new_id
from keel.store import Engine, Tx

PREFIX = "keel_"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts for."""

    user_id: str
    admin: bool = False
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user_id: str
    admin: bool
    name: str
    created_at: int
    revoked: bool


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_user(user_id: str) -> str:
    user_id = user_id.strip()
    if not user_id or len(user_id) > 128 or any(ord(c) < 33 for c in user_id):
        raise ConfigError("a user id is 1-128 characters with no spaces or control characters")
    return user_id


async def create_token(
    engine: Engine, user_id: str, *, admin: bool = False, name: str = ""
) -> tuple[TokenInfo, str]:
    """A new token for `user_id`: its record, and the token itself (shown only now)."""
    user_id = _check_user(user_id)
    token = PREFIX + secrets.token_urlsafe(32)
    info = TokenInfo(new_id("tok"), user_id, admin, name, now_us(), False)

    def insert(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO api_tokens (id, token_hash, user_id, admin, name, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (info.id, _hash(token), user_id, int(admin), name, info.created_at),
        )

    await engine.write(insert)
    return info, token


async def verify_token(engine: Engine, token: str) -> Caller | None:
    """The caller a token acts for, or None for an unknown or revoked token."""
    if not token.startswith(PREFIX):
        return None
    row = await engine.read(
        lambda tx: tx.fetchone(
            "SELECT id, user_id, admin FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
            (_hash(token),),
        )
    )
    if row is None:
        return None
    return Caller(user_id=str(row[1]), admin=bool(row[2]), token_id=str(row[0]))


async def list_tokens(engine: Engine) -> list[TokenInfo]:
    rows = await engine.read(
        lambda tx: tx.fetchall(
            "SELECT id, user_id, admin, name, created_at, revoked_at FROM api_tokens "
            "ORDER BY created_at"
        )
    )
    return [
        TokenInfo(str(a), str(b), bool(c), str(d), int(e), f is not None)
        for a, b, c, d, e, f in rows
    ]


async def revoke_token(engine: Engine, token_id: str) -> None:
    def revoke(tx: Tx) -> None:
        changed = tx.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now_us(), token_id),
        )
        if not changed:
            raise NotFound(f"no active token '{token_id}'; `keel token list` shows them")

    await engine.write(revoke)


async def has_tokens(engine: Engine) -> bool:
    row = await engine.read(
        lambda tx: tx.fetchone("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
    )
    return bool(row and row[0])
