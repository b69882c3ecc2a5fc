"""Artifacts are content-addressed (sha256) under KEEL_HOME, verified on every read, and
linked to their tasks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from board import Board

from keel.blackboard import ArtifactCorrupted, ArtifactNotFound, ScopeViolation
from keel.events import kinds
from keel.types import ArtifactType


def _blob(board: Board, checksum: str | None) -> Path:
    assert checksum is not None
    assert checksum.startswith("sha256:")
    return board.artifacts.path(checksum.removeprefix("sha256:"))


async def test_an_artifact_is_stored_by_its_sha256_under_keel_home(board: Board) -> None:
    session = await board.session()
    coder = board.actor(session)
    content = b"# Plan\n1. write the test\n"
    artifact = await board.artifacts.put(content, name="plan.md", type="document", actor=coder)
    digest = hashlib.sha256(content).hexdigest()
    assert artifact.checksum == f"sha256:{digest}"
    assert artifact.type is ArtifactType.DOCUMENT
    assert artifact.name == "plan.md"
    blob = board.keel.settings.home / "artifacts" / digest[:2] / digest[2:4] / digest
    assert blob.read_bytes() == content
    assert artifact.uri == blob.absolute().as_uri()
    assert not list(blob.parent.glob("*.tmp"))
    got, data = await board.artifacts.get(artifact.id, actor=coder)
    assert (got, data) == (artifact, content)
    [stored] = await board.events(session, kinds.ARTIFACT_STORED)
    assert stored.payload["artifactId"] == artifact.id
    assert stored.payload["sha256"] == digest
    assert stored.payload["size"] == len(content)


async def test_the_same_content_is_one_blob_and_two_artifacts(board: Board) -> None:
    session = await board.session()
    coder = board.actor(session)
    first = await board.artifacts.put(b"same", name="a.txt", type="file", actor=coder)
    second = await board.artifacts.put(b"same", name="b.txt", type="data", actor=coder)
    assert first.id != second.id
    assert first.checksum == second.checksum
    assert (first.name, second.name) == ("a.txt", "b.txt")
    assert len([p for p in (board.keel.settings.home / "artifacts").rglob("*") if p.is_file()]) == 1
    listed = await board.artifacts.list(session_id=session)
    assert [a.id for a in listed] == [first.id, second.id]


async def test_a_corrupted_blob_is_an_error_never_served(board: Board) -> None:
    coder = board.actor(await board.session())
    artifact = await board.artifacts.put(b"print('hello')\n", name="a.py", type="code", actor=coder)
    blob = _blob(board, artifact.checksum)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"print('pwned')\n")
    with pytest.raises(ArtifactCorrupted, match="does not match its checksum"):
        await board.artifacts.get(artifact.id)
    blob.unlink()
    with pytest.raises(ArtifactCorrupted, match="is missing"):
        await board.artifacts.get(artifact.id)


async def test_storing_the_content_again_repairs_a_corrupted_blob(board: Board) -> None:
    coder = board.actor(await board.session())
    artifact = await board.artifacts.put(b"data", name="d", type="data", actor=coder)
    blob = _blob(board, artifact.checksum)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"rot")
    await board.artifacts.put(b"data", name="d2", type="data", actor=coder)
    assert (await board.artifacts.get(artifact.id))[1] == b"data"


async def test_artifacts_are_linked_to_their_tasks(board: Board) -> None:
    session = await board.session()
    parent = await board.keel.tasks.create(board.keel.run_id, session_id=session, goal="ship")
    child = await board.keel.tasks.create(
        board.keel.run_id, session_id=session, goal="build", parent_id=parent.id
    )
    builder = board.actor(session, agent="builder", task_id=child.id)
    built = await board.artifacts.put(b"wheel", name="app.whl", type="file", actor=builder)
    loose = await board.artifacts.put(
        b"note", name="n.txt", type="document", actor=board.actor(session)
    )
    assert [a.id for a in await board.artifacts.list(task_id=child.id)] == [built.id]
    assert await board.artifacts.list(task_id=parent.id) == []
    planner = board.actor(session, agent="planner", task_id=parent.id)
    await board.artifacts.link(built.id, parent.id, actor=planner)
    await board.artifacts.link(built.id, parent.id, actor=planner)
    assert [a.id for a in await board.artifacts.list(task_id=parent.id)] == [built.id]
    assert {a.id for a in await board.artifacts.list(session_id=session)} == {built.id, loose.id}
    [linked] = await board.events(session, kinds.ARTIFACT_LINKED)
    assert linked.payload == {"artifactId": built.id, "taskId": parent.id}


async def test_artifacts_respect_memory_scopes(board: Board) -> None:
    a, b = await board.session(), await board.session()
    mine = await board.artifacts.put(b"a", name="a", type="data", actor=board.actor(a))
    shared = await board.artifacts.put(
        b"p", name="p", type="data", actor=board.actor(a, "project"), scope="project"
    )
    other = board.actor(b, "project")
    with pytest.raises(ScopeViolation, match="may not read"):
        await board.artifacts.get(mine.id, actor=other)
    assert (await board.artifacts.get(shared.id, actor=other))[1] == b"p"
    with pytest.raises(ScopeViolation, match="may not write"):
        await board.artifacts.put(b"x", name="x", type="data", actor=board.actor(b, "none"))
    denied = await board.events(b, kinds.BLACKBOARD_DENIED)
    assert [(e.payload["action"], e.payload.get("artifactId")) for e in denied] == [
        ("read", mine.id),
        ("write", None),
    ]


async def test_an_unknown_artifact_is_not_found(board: Board) -> None:
    with pytest.raises(ArtifactNotFound, match="a_missing"):
        await board.artifacts.get("a_missing")
