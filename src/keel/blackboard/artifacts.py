"""Artifacts: content-addressed blobs (sha256) with their metadata in the store.

`ArtifactStore` owns everything but the bytes: the metadata row, the links to tasks, the
`artifact.stored` event, the memory-scope checks, and the checksum check on every read (a
blob that is missing or no longer matches is `ArtifactCorrupted`, never served). Where the
bytes live is a subclass's business: `FileArtifactStore` keeps them under a directory as
`ab/cd/<sha256>`; an object-store engine implements the same three methods.

Equal content is stored once; each `put` is its own artifact (id, name, type, scope,
provenance) pointing at that content. The blob is written, durably, before the metadata
commits, so a committed artifact always had its bytes; a failed commit can leave a blob no
artifact points at, which is harmless.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from keel.blackboard.errors import ArtifactCorrupted, ArtifactNotFound
from keel.blackboard.scopes import Actor, authorize
from keel.events import EventLog, NewEvent, kinds, now_us
from keel.ids import new_id
from keel.store import Engine, Row, Tx
from keel.types import Artifact, ArtifactType, JsonObject

T = TypeVar("T")

_COLUMNS = "id, sha256, name, type, size, scope, session_id, task_id, agent, event_id, created_at"
_HASH_INLINE_BYTES = 256 * 1024
CHECKSUM_PREFIX = "sha256:"


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def _digest(content: bytes) -> str:
    if len(content) <= _HASH_INLINE_BYTES:
        return _sha256(content)
    return await asyncio.to_thread(_sha256, content)


class ArtifactStore(ABC):
    """Artifacts of sessions and tasks. Subclasses store the bytes by their sha256."""

    def __init__(self, engine: Engine, *, events: EventLog | None = None) -> None:
        self.engine = engine
        self._events = events

    # -- where the bytes live ------------------------------------------------------------

    @abstractmethod
    async def save_blob(self, digest: str, content: bytes) -> None:
        """Store `content` under its sha256 `digest`, durably, before returning."""

    @abstractmethod
    async def load_blob(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, or None when there are none."""

    @abstractmethod
    def uri(self, digest: str) -> str:
        """Where the bytes of `digest` live, for people and other tools."""

    # -- artifacts -----------------------------------------------------------------------

    def _artifact(self, row: Row) -> Artifact:
        artifact_id, digest, name, kind, _size, _scope, _session, _task, _agent, _event, at = row
        return Artifact(
            id=artifact_id,
            name=name,
            type=ArtifactType(kind),
            uri=self.uri(digest),
            checksum=CHECKSUM_PREFIX + digest,
            created_at=datetime.fromtimestamp(at / 1_000_000, UTC),
        )

    async def _authorize(
        self, actor: Actor, action: str, subject: JsonObject, check: Callable[[], T]
    ) -> T:
        notify = self._events.notify if self._events is not None else None
        return await authorize(self.engine, actor, action, subject, check, notify)

    async def put(
        self,
        content: bytes,
        *,
        name: str,
        type: ArtifactType | str,
        actor: Actor,
        scope: str = "session",
    ) -> Artifact:
        """Store `content` as a new artifact of `actor` (its session, task and agent are the
        provenance) in `scope`, linked to the actor's task, with its `artifact.stored`
        event."""
        kind = ArtifactType(type)
        subject: JsonObject = {"scope": scope, "artifact": name}
        concrete = await self._authorize(
            actor, "write", subject, lambda: actor.resolve(scope, "write")
        )
        digest = await _digest(content)
        await self.save_blob(digest, content)
        artifact_id = new_id("a")

        def store_in(tx: Tx) -> Row:
            stamp = now_us()
            payload: JsonObject = {
                "artifactId": artifact_id,
                "name": name,
                "type": kind.value,
                "sha256": digest,
                "size": len(content),
                "scope": concrete,
            }
            event = NewEvent(kinds.ARTIFACT_STORED, actor.agent, payload, actor.task_id)
            seq = EventLog.append_in(tx, actor.session_id, actor.run_id, [event])
            row = (
                artifact_id,
                digest,
                name,
                kind.value,
                len(content),
                concrete,
                actor.session_id,
                actor.task_id,
                actor.agent,
                f"{actor.session_id}:{seq}",
                stamp,
            )
            tx.execute(
                f"INSERT INTO artifacts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
            )
            if actor.task_id is not None:
                tx.execute(
                    "INSERT INTO artifact_links (task_id, artifact_id, linked_at) VALUES (?, ?, ?)",
                    (actor.task_id, artifact_id, stamp),
                )
            return row

        row = await self.engine.write(store_in)
        if self._events is not None:
            self._events.notify(actor.session_id)
        return self._artifact(row)

    async def _row(self, artifact_id: str) -> Row:
        row = await self.engine.read(
            lambda tx: tx.fetchone(f"SELECT {_COLUMNS} FROM artifacts WHERE id = ?", (artifact_id,))
        )
        if row is None:
            raise ArtifactNotFound(f"no artifact '{artifact_id}'; list a session's artifacts")
        return row

    async def get(self, artifact_id: str, *, actor: Actor | None = None) -> tuple[Artifact, bytes]:
        """The artifact and its content, checked against its checksum. With `actor`, the
        actor must be allowed to read the artifact's scope."""
        row = await self._row(artifact_id)
        scope = row[5]
        if actor is not None:
            subject: JsonObject = {"scope": scope, "artifactId": artifact_id}
            await self._authorize(actor, "read", subject, lambda: actor.resolve(scope, "read"))
        digest = row[1]
        content = await self.load_blob(digest)
        if content is None:
            raise ArtifactCorrupted(
                f"the content of artifact '{artifact_id}' ({row[2]}) is missing from "
                f"{self.uri(digest)}; store it again"
            )
        actual = await _digest(content)
        if actual != digest:
            raise ArtifactCorrupted(
                f"the content of artifact '{artifact_id}' ({row[2]}) at {self.uri(digest)} "
                f"does not match its checksum (sha256 {actual[:12]}..., expected "
                f"{digest[:12]}...); it is corrupted: store it again"
            )
        return self._artifact(row), content

    async def link(self, artifact_id: str, task_id: str, *, actor: Actor) -> None:
        """Link an artifact the actor may read to another task (a parent collecting its
        children's results, a reviewer's task), with an `artifact.linked` event."""
        row = await self._row(artifact_id)
        scope = row[5]
        subject: JsonObject = {"scope": scope, "artifactId": artifact_id}
        await self._authorize(actor, "read", subject, lambda: actor.resolve(scope, "read"))

        def link_in(tx: Tx) -> None:
            tx.lock(f"artifact-link:{task_id}:{artifact_id}")
            if tx.fetchone(
                "SELECT 1 FROM artifact_links WHERE task_id = ? AND artifact_id = ?",
                (task_id, artifact_id),
            ):
                return
            tx.execute(
                "INSERT INTO artifact_links (task_id, artifact_id, linked_at) VALUES (?, ?, ?)",
                (task_id, artifact_id, now_us()),
            )
            payload: JsonObject = {"artifactId": artifact_id, "taskId": task_id}
            event = NewEvent(kinds.ARTIFACT_LINKED, actor.agent, payload, actor.task_id)
            EventLog.append_in(tx, actor.session_id, actor.run_id, [event])

        await self.engine.write(link_in)
        if self._events is not None:
            self._events.notify(actor.session_id)

    async def list(
        self, *, session_id: str | None = None, task_id: str | None = None
    ) -> builtins.list[Artifact]:
        """The artifacts stored in a session, or linked to a task, oldest first."""
        if (session_id is None) == (task_id is None):
            raise ValueError("list the artifacts of a session_id or of a task_id, not both")
        if task_id is not None:
            columns = ", ".join(f"a.{column.strip()}" for column in _COLUMNS.split(","))
            sql = (
                f"SELECT {columns} FROM artifacts a JOIN artifact_links l "
                "ON l.artifact_id = a.id WHERE l.task_id = ? ORDER BY l.linked_at, a.id"
            )
            params: tuple[str, ...] = (task_id,)
        else:
            sql = f"SELECT {_COLUMNS} FROM artifacts WHERE session_id = ? ORDER BY created_at, id"
            params = (session_id or "",)
        rows = await self.engine.read(lambda tx: tx.fetchall(sql, params))
        return [self._artifact(row) for row in rows]


class FileArtifactStore(ArtifactStore):
    """Blobs as read-only files under `root` (usually `KEEL_HOME/artifacts`), at
    `ab/cd/<sha256>`. A blob is written to a temporary file, flushed to disk and renamed
    into place, so a reader never sees half of one."""

    def __init__(self, engine: Engine, root: Path, *, events: EventLog | None = None) -> None:
        super().__init__(engine, events=events)
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def uri(self, digest: str) -> str:
        return self.path(digest).absolute().as_uri()

    async def save_blob(self, digest: str, content: bytes) -> None:
        await asyncio.to_thread(self._save, digest, content)

    async def load_blob(self, digest: str) -> bytes | None:
        return await asyncio.to_thread(self._load, digest)

    def _load(self, digest: str) -> bytes | None:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def _save(self, digest: str, content: bytes) -> None:
        path = self.path(digest)
        existing = self._load(digest)
        if existing is not None and _sha256(existing) == digest:
            return  # the same content is already stored, intact
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{digest}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temporary, "xb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            temporary.chmod(0o444)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where directories cannot open."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
