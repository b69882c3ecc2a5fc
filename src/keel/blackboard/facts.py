"""Facts: (scope, key) -> a JSON value, with its kind, provenance, time to live and version.

A write is one transaction: it checks the version the writer expected, replaces the
current value, appends the value to the history and appends its event (`fact.written`, or
`decision.recorded` for a decision), so no value exists without the event that wrote it and
no event without its value. Versions count from 1 per (scope, key) and are never reused,
even after an expired value is swept, so (scope, key, version) names one value for good.

An expired fact is invisible to every read at once; `sweep` deletes it from the current
values later. The history keeps every value ever written, expired ones included: it is the
audit trail, and decisions point into it by version.

Who may see which scope is `scopes.py`'s decision; assembling an agent's context from the
visible facts is the context module's.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from keel.blackboard.errors import FactConflict, FactKindMismatch, FactNotFound, InvalidFact
from keel.blackboard.scopes import Actor, authorize
from keel.events import EventLog, NewEvent, dump_json, kinds, now_us
from keel.store import Engine, Row, Tx
from keel.types import JsonObject, KeelModel

MAX_KEY_CHARS = 200
MAX_VALUE_BYTES = 64 * 1024
MAX_TTL_S = 10 * 365 * 24 * 3600

_COLUMNS = (
    "scope, key, version, kind, value, session_id, task_id, agent, event_id, written_at, expires_at"
)
T = TypeVar("T")
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class FactKind(StrEnum):
    FACT = "fact"
    DECISION = "decision"


class FactRef(KeelModel):
    """One value of one fact. As input, `scope` may be a level (`session`) and a missing
    `version` means the current one; the refs the blackboard returns are always concrete."""

    scope: str
    key: str
    version: int | None = None


class Fact(KeelModel):
    """One version of a fact, with who wrote it, when, and from which event."""

    scope: str
    key: str
    version: int
    kind: FactKind
    value: Any
    session_id: str
    task_id: str | None = None
    agent: str
    event_id: str
    written_at: datetime
    expires_at: datetime | None = None

    @property
    def ref(self) -> FactRef:
        return FactRef(scope=self.scope, key=self.key, version=self.version)


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat()


def _fact(row: Row) -> Fact:
    scope, key, version, kind, value, session_id, task_id, agent, event_id, at, expires = row
    return Fact(
        scope=scope,
        key=key,
        version=int(version),
        kind=FactKind(kind),
        value=json.loads(value),
        session_id=session_id,
        task_id=task_id,
        agent=agent,
        event_id=event_id,
        written_at=datetime.fromtimestamp(at / 1_000_000, UTC),
        expires_at=_time(expires),
    )


def _check_key(key: str) -> None:
    if not key.strip():
        raise InvalidFact("a fact needs a non-empty key")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidFact(f"the key '{key[:40]}...' is longer than {MAX_KEY_CHARS} characters")
    if any(ord(char) < 32 for char in key):
        raise InvalidFact(f"the key {key!r} contains control characters")


def encode_value(key: str, value: object) -> str:
    """`value` as stored: compact JSON of at most `MAX_VALUE_BYTES`."""
    try:
        text = dump_json(value)
    except (TypeError, ValueError) as error:
        raise InvalidFact(f"the value of '{key}' is not JSON: {error}") from None
    if len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise InvalidFact(
            f"the value of '{key}' is larger than {MAX_VALUE_BYTES // 1024} KiB; store it as "
            "an artifact and write the artifact's id as the fact"
        )
    return text


class FactStore:
    """Facts on the blackboard. `clock` (microseconds since the epoch) decides what has
    expired; `events`, when given, wakes this process's followers after each write."""

    def __init__(
        self,
        engine: Engine,
        *,
        events: EventLog | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self._events = events

    def notify(self, session_id: str) -> None:
        """Wake this process's followers of `session_id` after a commit."""
        if self._events is not None:
            self._events.notify(session_id)

    async def authorize(
        self, actor: Actor, action: str, subject: JsonObject, check: Callable[[], T]
    ) -> T:
        """Run one of `actor`'s scope checks; a refusal is recorded as a
        `blackboard.denied` event, then raised as `ScopeViolation`."""
        return await authorize(self.engine, actor, action, subject, check, self.notify)

    # -- inside a transaction -----------------------------------------------------------

    def write_in(
        self,
        tx: Tx,
        actor: Actor,
        key: str,
        value: object,
        *,
        scope: str = "session",
        ttl_s: float | None = None,
        expected_version: int | None = None,
        kind: FactKind = FactKind.FACT,
        event_payload: JsonObject | None = None,
    ) -> Fact:
        """Write a new version of (scope, key) in an open transaction. A scope the actor
        may not write raises `ScopeViolation` without an event: use `write`, or
        `authorize` first. `expected_version` 0 means "must not exist yet"."""
        concrete = actor.resolve(scope, "write")
        _check_key(key)
        text = encode_value(key, value)
        if ttl_s is not None and not 0 < ttl_s <= MAX_TTL_S:
            raise InvalidFact(
                f"the time to live of '{key}' must be positive and at most {MAX_TTL_S} s "
                f"(ten years), not {ttl_s}"
            )
        tx.lock(f"fact:{concrete}:{key}")
        now = self.clock()
        row = tx.fetchone(
            "SELECT version, kind, expires_at FROM facts WHERE scope = ? AND key = ?",
            (concrete, key),
        )
        live = row is not None and (row[2] is None or row[2] > now)
        current = int(row[0]) if row is not None and live else 0
        if expected_version is not None and expected_version != current:
            raise FactConflict(concrete, key, expected_version, current)
        if row is not None and live and row[1] != kind.value:
            fix = "revise it with record_decision" if row[1] == "decision" else "use another key"
            raise FactKindMismatch(
                f"'{key}' in {concrete} holds a {row[1]}, not a {kind.value}: {fix}"
            )
        version = (int(row[0]) if row is not None else self._last_version_in(tx, concrete, key)) + 1
        expires_at = now + int(ttl_s * 1_000_000) if ttl_s is not None else None
        payload: JsonObject = {"scope": concrete, "key": key, "version": version}
        if expires_at is not None:
            payload["expiresAt"] = _iso(expires_at)
        payload.update(event_payload or {})
        event_kind = kinds.DECISION_RECORDED if kind is FactKind.DECISION else kinds.FACT_WRITTEN
        seq = EventLog.append_in(
            tx,
            actor.session_id,
            actor.run_id,
            [NewEvent(event_kind, actor.agent, payload, actor.task_id)],
        )
        event_id = f"{actor.session_id}:{seq}"
        values = (
            concrete,
            key,
            version,
            kind.value,
            text,
            actor.session_id,
            actor.task_id,
            actor.agent,
            event_id,
            now,
            expires_at,
        )
        if row is not None:
            tx.execute(
                "UPDATE facts SET version = ?, kind = ?, value = ?, session_id = ?, task_id = ?, "
                "agent = ?, event_id = ?, written_at = ?, expires_at = ? "
                "WHERE scope = ? AND key = ?",
                (*values[2:], concrete, key),
            )
        else:
            tx.execute(
                f"INSERT INTO facts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values
            )
        tx.execute(
            f"INSERT INTO fact_history ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        return _fact(values)

    @staticmethod
    def _last_version_in(tx: Tx, scope: str, key: str) -> int:
        row = tx.fetchone(
            "SELECT MAX(version) FROM fact_history WHERE scope = ? AND key = ?", (scope, key)
        )
        return int(row[0]) if row is not None and row[0] is not None else 0

    def read_in(self, tx: Tx, scopes: tuple[str, ...], key: str) -> Fact | None:
        """The live value of `key` in the first of `scopes` that has one."""
        if not scopes:
            return None
        marks = ", ".join("?" * len(scopes))
        rows = tx.fetchall(
            f"SELECT {_COLUMNS} FROM facts WHERE key = ? AND scope IN ({marks}) AND {_LIVE}",
            (key, *scopes, self.clock()),
        )
        by_scope = {row[0]: row for row in rows}
        for scope in scopes:
            if scope in by_scope:
                return _fact(by_scope[scope])
        return None

    @staticmethod
    def version_in(tx: Tx, scope: str, key: str, version: int) -> Fact | None:
        """One version of a fact from the history, expired or not."""
        row = tx.fetchone(
            f"SELECT {_COLUMNS} FROM fact_history WHERE scope = ? AND key = ? AND version = ?",
            (scope, key, version),
        )
        return _fact(row) if row is not None else None

    # -- on their own --------------------------------------------------------------------

    async def write(
        self,
        actor: Actor,
        key: str,
        value: object,
        *,
        scope: str = "session",
        ttl_s: float | None = None,
        expected_version: int | None = None,
    ) -> Fact:
        """Write a new version of `key` in `scope` (a level or a concrete scope) and its
        `fact.written` event. A stale `expected_version` raises `FactConflict` and changes
        nothing."""
        subject: JsonObject = {"scope": scope, "key": key}
        concrete = await self.authorize(
            actor, "write", subject, lambda: actor.resolve(scope, "write")
        )
        fact = await self.engine.write(
            lambda tx: self.write_in(
                tx,
                actor,
                key,
                value,
                scope=concrete,
                ttl_s=ttl_s,
                expected_version=expected_version,
            )
        )
        self.notify(actor.session_id)
        return fact

    async def read(self, actor: Actor, key: str, *, scope: str | None = None) -> Fact:
        """The live value of `key` in `scope`, or, without one, in the narrowest scope the
        actor may read that has it. `FactNotFound` when there is none."""
        subject: JsonObject = {"scope": scope, "key": key}
        scopes = await self.authorize(actor, "read", subject, lambda: actor.readable(scope))
        fact = await self.engine.read(lambda tx: self.read_in(tx, scopes, key))
        if fact is None:
            raise FactNotFound(
                f"no fact '{key}' in {' or '.join(scopes)} (it was never written there, or it "
                "has expired)"
            )
        return fact

    async def visible(self, actor: Actor, *, kind: FactKind | None = None) -> builtins.list[Fact]:
        """Every live fact (or only those of `kind`) in the scopes `actor` may read,
        narrowest scope first, then by key. A key in two scopes appears once per scope.
        An actor whose memory scope is `none` sees nothing."""
        scopes = actor.scopes
        if not scopes:
            return []
        marks = ", ".join("?" * len(scopes))
        sql = f"SELECT {_COLUMNS} FROM facts WHERE scope IN ({marks}) AND {_LIVE}"
        params: tuple[object, ...] = (*scopes, self.clock())
        if kind is not None:
            sql += " AND kind = ?"
            params = (*params, kind.value)
        rows = await self.engine.read(lambda tx: tx.fetchall(sql, params))
        order = {scope: index for index, scope in enumerate(scopes)}
        facts = [_fact(row) for row in rows]
        facts.sort(key=lambda fact: (order[fact.scope], fact.key))
        return facts

    async def history(
        self, actor: Actor, key: str, *, scope: str = "session"
    ) -> builtins.list[Fact]:
        """Every value `key` has had in `scope`, oldest first, expired ones included."""
        subject: JsonObject = {"scope": scope, "key": key}
        concrete = await self.authorize(
            actor, "read", subject, lambda: actor.resolve(scope, "read")
        )
        rows = await self.engine.read(
            lambda tx: tx.fetchall(
                f"SELECT {_COLUMNS} FROM fact_history WHERE scope = ? AND key = ? ORDER BY version",
                (concrete, key),
            )
        )
        return [_fact(row) for row in rows]

    async def sweep(self) -> int:
        """Delete the expired current values; return how many. Their history stays."""
        now = self.clock()
        return await self.engine.write(
            lambda tx: tx.execute(
                "DELETE FROM facts WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
        )
