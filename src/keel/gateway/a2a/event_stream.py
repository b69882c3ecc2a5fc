"""The SDK's cross-replica event stream over Keel's event log.

The SDK serves a subscriber from the executor that runs the task in this process; for a
task no executor here follows (the server restarted, or another node took the request) it
serves the stored snapshot and then this stream. Keel's event log already is the stream
every node shares, so publishing adds nothing: a subscriber reads the session's events
after the snapshot's version and gets them as the executor would have sent them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from a2a.server.cluster import TaskEventStream, TaskVersion, VersionedEvent
from a2a.types import TaskState

from keel.gateway.a2a.progress import TaskRef, follow
from keel.gateway.a2a.task_store import EventSeq, read_record, seq_of
from keel.orchestrator import Keel


class KeelEventStream(TaskEventStream):
    def __init__(self, keel: Keel) -> None:
        self._keel = keel

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        """Nothing to do: every update comes from an event already in the shared log."""

    async def subscribe(
        self, task_id: str, *, after: TaskVersion
    ) -> AsyncGenerator[VersionedEvent, None]:
        record = await read_record(self._keel, task_id)
        if record is None:
            return
        ref = TaskRef(task_id, record.context_id)
        # The snapshot may already say working; a repeated update is harmless, a lost one
        # is not, so the stream starts as if from submitted.
        updates = follow(self._keel, ref, seq_of(after), state=TaskState.TASK_STATE_SUBMITTED)
        async for seq, update in updates:
            yield VersionedEvent(event=update, version=EventSeq(seq))

    async def destroy(self, task_id: str) -> None:
        """Nothing to release: the log is the session's record and stays."""
