"""The file tools read and write through the editor's file system when one is set around a
run: the context variable reaches every tool call of the run, paths are still confined to
the workspace, and without an editor the tools use the disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from keel import Keel
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.tools import ToolContext, ToolError
from keel.tools.editor_fs import current_editor_fs, use_editor_fs
from keel.tools.files import EditFile, ReadFile, WriteFile
from keel.types import SessionStatus


class FakeEditor:
    """An editor whose buffers win over the disk, and which records what it was asked."""

    def __init__(self, *, reads: bool = True, writes: bool = True) -> None:
        self.buffers: dict[Path, str] = {}
        self.calls: list[tuple[str, Path]] = []
        self._reads = reads
        self._writes = writes

    @property
    def reads(self) -> bool:
        return self._reads

    @property
    def writes(self) -> bool:
        return self._writes

    async def read_text(self, path: Path) -> str:
        self.calls.append(("read", path))
        if path in self.buffers:
            return self.buffers[path]
        if not await asyncio.to_thread(path.exists):
            raise ToolError(f"the editor has no file {path}")
        return await asyncio.to_thread(path.read_text)

    async def write_text(self, path: Path, content: str) -> None:
        self.calls.append(("write", path))
        self.buffers[path] = content


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = (tmp_path / "project").resolve()
    folder.mkdir()
    (folder / "notes.txt").write_text("on disk\n")
    return folder


def context(workspace: Path) -> ToolContext:
    return ToolContext(workspace, "s_test", "t_test", "writer")


async def test_file_tools_read_and_write_through_the_editor(workspace: Path) -> None:
    editor = FakeEditor()
    editor.buffers[workspace / "notes.txt"] = "unsaved in the editor\n"
    with use_editor_fs(editor):
        read = await ReadFile().run({"path": "notes.txt"}, context(workspace))
        wrote = await WriteFile().run(
            {"path": "new/plan.md", "content": "a plan"}, context(workspace)
        )
        edited = await EditFile().run(
            {"path": "notes.txt", "old": "unsaved", "new": "edited"}, context(workspace)
        )

    assert "unsaved in the editor" in read
    assert wrote == "created 'new/plan.md' (6 bytes)"
    assert edited == "edited 'notes.txt' at line 1"
    assert editor.buffers[workspace / "new/plan.md"] == "a plan"
    assert editor.buffers[workspace / "notes.txt"] == "edited in the editor\n"
    assert (workspace / "notes.txt").read_text() == "on disk\n"  # the editor saves, not Keel
    assert not (workspace / "new/plan.md").exists()
    assert current_editor_fs() is None


async def test_an_editor_that_only_reads_leaves_writing_to_the_disk(workspace: Path) -> None:
    editor = FakeEditor(writes=False)
    with use_editor_fs(editor):
        await WriteFile().run({"path": "notes.txt", "content": "new"}, context(workspace))
        read = await ReadFile().run({"path": "notes.txt"}, context(workspace))
    assert (workspace / "notes.txt").read_text() == "new"
    assert "new" in read
    assert editor.calls == [("read", workspace / "notes.txt")]


async def test_paths_outside_the_workspace_are_refused_before_the_editor_is_asked(
    workspace: Path,
) -> None:
    editor = FakeEditor()
    with use_editor_fs(editor):
        with pytest.raises(ToolError, match="leads outside the workspace"):
            await ReadFile().run({"path": "../secret.txt"}, context(workspace))
        with pytest.raises(ToolError, match="is an absolute path"):
            await WriteFile().run({"path": "/etc/passwd", "content": "x"}, context(workspace))
        with pytest.raises(ToolError, match="the editor has no file"):
            await ReadFile().run({"path": "missing.txt"}, context(workspace))
    assert editor.calls == [("read", workspace / "missing.txt")]


def write_then_read(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    turn = sum(1 for m in messages if m.role == "assistant")
    if turn == 0:
        call = ToolCall(id="w", name="write_file", arguments={"path": "out.txt", "content": "hi"})
        return Message(role="assistant", tool_calls=[call])
    if turn == 1:
        call = ToolCall(id="r", name="read_file", arguments={"path": "out.txt"})
        return Message(role="assistant", tool_calls=[call])
    return f"read back: {messages[-1].content.strip()}"


WRITER = {
    "name": "writer",
    "role": "worker",
    "model": "scripted:write-then-read",
    "tools": ["write_file", "read_file"],
    "permissions": [
        {"level": "L1", "scope": "file:read"},
        {"level": "L2", "scope": "file:write"},
    ],
}


@pytest.fixture
async def local_keel(home: Path) -> AsyncIterator[Keel]:
    register_script("write-then-read", write_then_read)
    async with await Keel.open(home, database_url=f"sqlite:///{home / 'keel.db'}") as keel:
        yield keel


async def test_the_editor_set_around_a_run_reaches_its_tool_calls(
    local_keel: Keel, workspace: Path
) -> None:
    config = {"workspace": str(workspace), "isolate": False}
    editor = FakeEditor()
    session = await local_keel.create_session("Write and read", [WRITER], config=config)
    with use_editor_fs(editor):
        run = asyncio.create_task(local_keel.run(session.id))
    finished = await run  # awaited outside the block: the task kept its own copy

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "read back: 1\thi"
    assert editor.calls == [("write", workspace / "out.txt"), ("read", workspace / "out.txt")]
    assert not (workspace / "out.txt").exists()

    other = await local_keel.create_session("Write and read", [WRITER], config=config)
    assert (await local_keel.run(other.id)).status is SessionStatus.DONE
    assert (workspace / "out.txt").read_text() == "hi"  # no editor: the disk
    assert len(editor.calls) == 2
