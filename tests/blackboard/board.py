"""The blackboard the tests use: the stores on a `keel` runtime, a clock the test moves,
and helpers to make actors and find events."""

from __future__ import annotations

from dataclasses import dataclass

from keel import Keel
from keel.blackboard import Actor, DecisionLog, FactStore, FileArtifactStore
from keel.events import now_us
from keel.types import MemoryScope, TraceEvent


class Clock:
    """Microseconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = now_us()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


@dataclass
class Board:
    keel: Keel
    clock: Clock
    facts: FactStore
    decisions: DecisionLog
    artifacts: FileArtifactStore

    async def session(self) -> str:
        return (await self.keel.start_flow("blackboard")).id

    def actor(
        self,
        session_id: str,
        memory: MemoryScope | str = MemoryScope.SESSION,
        *,
        agent: str = "coder",
        project: str | None = "p1",
        task_id: str | None = None,
    ) -> Actor:
        return Actor(
            agent=agent,
            session_id=session_id,
            run_id=self.keel.run_id,
            memory_scope=MemoryScope(memory),
            project=project,
            task_id=task_id,
        )

    async def events(self, session_id: str, kind: str) -> list[TraceEvent]:
        return [e for e in await self.keel.events.read(session_id) if e.type == kind]

    async def event(self, event_id: str) -> TraceEvent:
        session_id, _, seq = event_id.rpartition(":")
        found = await self.keel.events.read(session_id, after=int(seq) - 1, limit=1)
        assert found, f"no event {event_id}"
        return found[0]
