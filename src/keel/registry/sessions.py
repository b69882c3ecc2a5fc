"""The session registry: who asked for what, with which agent versions, and how it ended."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from keel.errors import IllegalTransition, SessionNotFound
from keel.events import EventLog, NewEvent, dump_json, kinds, now_us
from keel.ids import new_id
from keel.store import Engine, Row, Tx
from keel.types import Budget, JsonObject, Session, SessionStatus

ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.PENDING: frozenset(
        {SessionStatus.RUNNING, SessionStatus.CANCELLED, SessionStatus.FAILED}
    ),
    SessionStatus.RUNNING: frozenset(
        {SessionStatus.DONE, SessionStatus.FAILED, SessionStatus.CANCELLED}
    ),
    SessionStatus.DONE: frozenset(),
    SessionStatus.FAILED: frozenset(),
    SessionStatus.CANCELLED: frozenset(),
}

FINAL_EVENT = {
    SessionStatus.DONE: kinds.SESSION_COMPLETED,
    SessionStatus.FAILED: kinds.SESSION_FAILED,
    SessionStatus.CANCELLED: kinds.SESSION_CANCELLED,
}

_COLUMNS = (
    "id, user_id, goal, status, config, budget, agent_versions, final_answer, created_at, "
    "updated_at"
)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _session(row: Row) -> Session:
    (session_id, user_id, goal, status, config, budget, versions, final, created, updated) = row
    return Session(
        id=session_id,
        user_id=user_id,
        goal=goal,
        status=SessionStatus(status),
        config=json.loads(config) if config else None,
        budget=Budget.model_validate_json(budget) if budget else None,
        agent_versions=json.loads(versions),
        final_answer=final,
        created_at=_time(created),
        updated_at=_time(updated),
    )


class SessionRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def create_in(
        tx: Tx,
        run_id: str,
        *,
        goal: str,
        user_id: str,
        agent_versions: dict[str, int],
        config: JsonObject | None = None,
        budget: Budget | None = None,
    ) -> Session:
        session = Session(
            id=new_id("s"),
            user_id=user_id,
            goal=goal,
            config=config,
            budget=budget,
            agent_versions=agent_versions,
        )
        stamp = now_us()
        tx.execute(
            f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (
                session.id,
                user_id,
                goal,
                session.status.value,
                dump_json(config) if config is not None else None,
                budget.model_dump_json(by_alias=True) if budget else None,
                dump_json(agent_versions),
                stamp,
                stamp,
            ),
        )
        payload: JsonObject = {"goal": goal, "userId": user_id, "agentVersions": agent_versions}
        if budget is not None:
            payload["budget"] = budget.to_json()
        EventLog.append_in(
            tx, session.id, run_id, [NewEvent(kinds.SESSION_CREATED, user_id, payload)]
        )
        return session

    @staticmethod
    def get_in(tx: Tx, session_id: str) -> Session:
        row = tx.fetchone(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            raise SessionNotFound(
                f"no session '{session_id}' in this store; `keel sessions` lists them"
            )
        return _session(row)

    @staticmethod
    def transition_in(
        tx: Tx,
        run_id: str,
        session_id: str,
        to: SessionStatus,
        *,
        final_answer: str | None = None,
        payload: JsonObject | None = None,
    ) -> None:
        """Move a session to `to`; reaching an end writes its final event with `payload`."""
        tx.lock(f"session:{session_id}")
        row = tx.fetchone("SELECT status FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            raise SessionNotFound(f"no session '{session_id}'")
        current = SessionStatus(row[0])
        if to not in ALLOWED[current]:
            allowed = sorted(s.value for s in ALLOWED[current])
            raise IllegalTransition(f"session {session_id}", current.value, to.value, allowed)
        tx.execute(
            "UPDATE sessions SET status = ?, final_answer = COALESCE(?, final_answer), "
            "updated_at = ? WHERE id = ?",
            (to.value, final_answer, now_us(), session_id),
        )
        kind = FINAL_EVENT.get(to)
        if kind is not None:
            EventLog.append_in(tx, session_id, run_id, [NewEvent(kind, "keel", payload or {})])

    @staticmethod
    def delete_in(tx: Tx, session_id: str) -> None:
        """Remove a session and everything recorded for it: tasks, events, checkpoint,
        requests. Its blackboard facts and artifacts stay (they may be shared)."""
        SessionRegistry.get_in(tx, session_id)
        tx.lock(f"session:{session_id}")
        for table in ("tasks", "events", "checkpoints", "cancel_requests", "approvals"):
            tx.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        tx.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    async def ids(self) -> set[str]:
        rows = await self._engine.read(lambda tx: tx.fetchall("SELECT id FROM sessions"))
        return {str(row[0]) for row in rows}

    async def get(self, session_id: str) -> Session:
        return await self._engine.read(lambda tx: self.get_in(tx, session_id))

    async def list(self, limit: int = 50, user_id: str | None = None) -> list[Session]:
        if user_id is None:
            sql = f"SELECT {_COLUMNS} FROM sessions ORDER BY created_at DESC LIMIT ?"
            params: tuple[object, ...] = (limit,)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM sessions WHERE user_id = ? "
                "ORDER BY created_at DESC LIMIT ?"
            )
            params = (user_id, limit)
        rows = await self._engine.read(lambda tx: tx.fetchall(sql, params))
        return [_session(row) for row in rows]
