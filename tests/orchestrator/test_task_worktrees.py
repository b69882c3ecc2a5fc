"""Task worktrees in team sessions on a git repository: a task whose agent writes works in
a worktree of its own, branched from its parent's files, and merges back when it is done;
a conflict blocks the parent, with the conflict kept as an artifact, and overwrites
nothing; read-only tasks work in their parent's workspace; a resumed session reopens a
task's worktree and never merges twice. Real git repositories, real sessions; only the
models are scripted."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, ToolSpec, register_script
from keel.types import Session, SessionStatus, TaskStatus, TraceEvent
from keel.workspace.model import MergeResult, Workspace
from keel.workspace.snapshots import list_snapshots
from keel.workspace.worktrees import WorkspaceManager

READ = {"level": "L1", "scope": "file:read"}
WRITE = {"level": "L2", "scope": "file:write"}
DELEGATE = {"level": "L4", "scope": "agent:*"}
GIT_ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on the way out)."""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "notes.txt").write_text("base\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture
async def keel(home: Path) -> AsyncIterator[Keel]:
    async with await Keel.open(home) as runtime:
        yield runtime


def call(name: str, **arguments: Any) -> tuple[str, dict[str, Any]]:
    return name, arguments


def use(messages: Sequence[Message], *calls: tuple[str, dict[str, Any]]) -> Message:
    turn = sum(1 for m in messages if m.role == "assistant")
    tool_calls = [
        ToolCall(id=f"c{turn}_{i}", name=n, arguments=a) for i, (n, a) in enumerate(calls)
    ]
    return Message(role="assistant", content="", tool_calls=tool_calls)


def goal(messages: Sequence[Message]) -> str:
    first = next(m.content for m in messages if m.role == "user")
    return first.splitlines()[0].removeprefix("Goal: ")


def planner(name: str, *goals: str) -> dict[str, Any]:
    """A planner whose tasks all run in parallel, each for a `writer`."""
    tasks = [{"goal": g, "role": "writer", "dependsOn": []} for g in goals]
    register_script(name, [json.dumps({"tasks": tasks})])
    return {"name": "planner", "role": "planner", "model": f"scripted:{name}"}


def writer_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
    """`Write <path> with <word>`: writes the word to the file, then says it did."""
    wanted = re.fullmatch(r"Write (\S+) with (\w+)", goal(messages))
    assert wanted is not None
    if not any(m.role == "tool" for m in messages):
        return use(messages, call("write_file", path=wanted[1], content=f"{wanted[2]}\n"))
    return f"wrote {wanted[1]}"


register_script("tw-writer", writer_script)
WRITER = {
    "name": "writer",
    "role": "writer",
    "model": "scripted:tw-writer",
    "tools": ["read_file", "write_file"],
    "permissions": [READ, WRITE],
}


async def run(
    keel: Keel, goal_text: str, agents: list[dict[str, Any]], repo: Path
) -> tuple[Session, list[TraceEvent]]:
    config = {"workspace": str(repo), "scriptedLatencyMs": 100}
    session = await keel.create_session(goal_text, agents, config=config)
    finished = await keel.run(session.id)
    return finished, await keel.events.read(session.id)


def of(events: list[TraceEvent], kind: str) -> list[TraceEvent]:
    return [event for event in events if event.type == kind]


def task_worktrees(home: Path, session_id: str) -> list[Path]:
    return sorted(home.glob(f"worktrees/*/{session_id}.*"))


async def session_files(keel: Keel, session_id: str) -> Workspace:
    return await keel.workspaces.find_session(session_id)


async def test_parallel_writing_tasks_each_get_a_worktree_and_both_changes_merge(
    keel: Keel, repo: Path, home: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD")
    agents = [planner("tw-plan-ab", "Write a.txt with alpha", "Write b.txt with beta"), WRITER]

    finished, events = await run(keel, "Write both", agents, repo)

    assert finished.status is SessionStatus.DONE
    opened = of(events, kinds.WORKSPACE_TASK_OPENED)
    merged = of(events, kinds.WORKSPACE_MERGED)
    assert len({e.payload["path"] for e in opened}) == 2
    assert {e.payload["branch"] for e in opened} == {
        f"keel/{finished.id}.{e.task_id}" for e in opened
    }
    assert max(e.seq for e in opened) < min(e.seq for e in merged)  # both worked at once
    assert sorted(tuple(e.payload["files"]) for e in merged) == [("a.txt",), ("b.txt",)]
    workspace = await session_files(keel, finished.id)
    assert (workspace.path / "a.txt").read_text() == "alpha\n"
    assert (workspace.path / "b.txt").read_text() == "beta\n"
    assert git(repo, "show", f"keel/{finished.id}:a.txt") == "alpha\n"
    assert git(repo, "show", f"keel/{finished.id}:b.txt") == "beta\n"
    assert task_worktrees(home, finished.id) == []
    assert git(repo, "branch", "--list", f"keel/{finished.id}.*") == ""
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""


async def test_a_conflict_blocks_the_session_keeps_the_conflict_and_overwrites_nothing(
    keel: Keel, repo: Path, home: Path
) -> None:
    agents = [
        planner("tw-plan-same", "Write notes.txt with alpha", "Write notes.txt with beta"),
        WRITER,
    ]

    finished, events = await run(keel, "Write the notes twice", agents, repo)

    assert finished.status is SessionStatus.FAILED
    assert finished.final_answer is None
    (merged,) = of(events, kinds.WORKSPACE_MERGED)
    (conflict,) = of(events, kinds.WORKSPACE_MERGE_CONFLICT)
    assert max(e.seq for e in of(events, kinds.WORKSPACE_TASK_OPENED)) < merged.seq
    goals = {t.id: t.goal for t in await keel.tasks.list(finished.id)}
    kept_word = goals[merged.task_id or ""].split()[-1]
    lost_word = goals[conflict.task_id or ""].split()[-1]
    workspace = await session_files(keel, finished.id)
    assert (workspace.path / "notes.txt").read_text() == f"{kept_word}\n"  # not overwritten
    assert conflict.payload["files"] == ["notes.txt"]
    root = next(t for t in await keel.tasks.list(finished.id) if t.parent_id is None)
    assert conflict.payload["into"] == root.id
    assert root.status is TaskStatus.BLOCKED
    (artifact,) = await keel.artifacts.list(task_id=root.id)
    assert artifact.id == conflict.payload["artifactId"]
    assert artifact.name == f"merge-conflict-{conflict.task_id}.patch"
    _, content = await keel.artifacts.get(artifact.id)
    text = content.decode()
    assert f"<<<<<<< session {finished.id}" in text
    assert f">>>>>>> task {conflict.task_id}" in text
    assert f"+{kept_word}" in text or f" {kept_word}" in text
    assert lost_word in text
    (failed,) = of(events, kinds.SESSION_FAILED)
    assert "the session is blocked" in failed.payload["reason"]
    assert artifact.id in failed.payload["reason"]
    assert root.id in failed.payload["blocked"]
    (kept,) = task_worktrees(home, finished.id)  # the conflicting task's, to look at
    assert kept == Path(conflict.payload["worktree"])
    assert (kept / "notes.txt").read_text() == f"{lost_word}\n"


async def test_a_read_only_task_works_in_the_session_workspace_without_a_worktree(
    keel: Keel, repo: Path, home: Path
) -> None:
    def reader(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        answers = [m.content for m in messages if m.role == "tool"]
        if not answers:
            return use(messages, call("read_file", path="notes.txt"))
        return f"read: {answers[0]}"

    register_script("tw-reader", reader)
    agents = [
        {
            "name": "reader",
            "role": "reader",
            "model": "scripted:tw-reader",
            "tools": ["read_file", "grep"],
            "permissions": [READ],
        }
    ]

    finished, events = await run(keel, "Read the notes", agents, repo)

    assert finished.status is SessionStatus.DONE
    assert "base" in (finished.final_answer or "")
    assert of(events, kinds.WORKSPACE_TASK_OPENED) == []
    assert of(events, kinds.WORKSPACE_MERGED) == []
    kinds_entered = {e.payload["kind"] for e in of(events, kinds.NODE_ENTER)}
    assert kinds_entered == {"plan", "model", "tools"}
    assert task_worktrees(home, finished.id) == []


async def test_a_delegated_task_merges_into_its_delegating_task_then_that_into_the_session(
    keel: Keel, repo: Path
) -> None:
    def lead(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        answers = [m for m in messages if m.role == "tool"]
        if not answers:
            return use(messages, call("delegate", goal="Write helper.txt with help", role="writer"))
        if len(answers) == 1:
            return use(messages, call("write_file", path="lead.txt", content="lead\n"))
        return "led"

    register_script("tw-lead", lead)
    agents = [
        {
            "name": "lead",
            "role": "lead",
            "model": "scripted:tw-lead",
            "tools": ["write_file", "delegate"],
            "permissions": [WRITE, DELEGATE],
        },
        WRITER,
    ]

    finished, events = await run(keel, "Lead the writing", agents, repo)

    assert finished.status is SessionStatus.DONE
    tasks = {t.assigned_agent: t for t in await keel.tasks.list(finished.id)}
    lead_task, helper_task = tasks["lead"], tasks["writer"]
    opened = {e.task_id: e.payload for e in of(events, kinds.WORKSPACE_TASK_OPENED)}
    assert opened[helper_task.id]["parentTaskId"] == lead_task.id
    merged = {e.task_id: e.payload for e in of(events, kinds.WORKSPACE_MERGED)}
    assert merged[helper_task.id]["into"] == lead_task.id
    assert merged[helper_task.id]["files"] == ["helper.txt"]
    assert helper_task.parent_id == lead_task.id
    assert merged[lead_task.id]["into"] == lead_task.parent_id
    assert sorted(merged[lead_task.id]["files"]) == ["helper.txt", "lead.txt"]
    workspace = await session_files(keel, finished.id)
    assert (workspace.path / "helper.txt").read_text() == "help\n"
    assert (workspace.path / "lead.txt").read_text() == "lead\n"


async def test_a_failed_task_s_worktree_is_discarded_and_its_change_kept_as_an_artifact(
    keel: Keel, repo: Path, home: Path
) -> None:
    def restless(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message:
        return use(messages, call("write_file", path="half.txt", content="half\n"))

    register_script("tw-restless", restless)
    agents = [{**WRITER, "name": "restless", "model": "scripted:tw-restless", "maxTurns": 2}]

    finished, events = await run(keel, "Never finish", agents, repo)

    assert finished.status is SessionStatus.FAILED
    (discarded,) = of(events, kinds.WORKSPACE_TASK_DISCARDED)
    _, patch = await keel.artifacts.get(discarded.payload["artifactId"])
    assert "+++ b/half.txt" in patch.decode()
    assert of(events, kinds.WORKSPACE_MERGED) == []
    workspace = await session_files(keel, finished.id)
    assert not (workspace.path / "half.txt").exists()
    assert task_worktrees(home, finished.id) == []


async def test_a_resumed_task_reopens_its_worktree_with_what_it_wrote_before(
    home: Path, repo: Path
) -> None:
    crashes = [Crash()]

    def two_files(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        turn = sum(1 for m in messages if m.role == "assistant")
        if turn == 0:
            return use(messages, call("write_file", path="first.txt", content="1\n"))
        if turn == 1:
            if crashes:
                raise crashes.pop()
            return use(messages, call("write_file", path="second.txt", content="2\n"))
        return "both written"

    register_script("tw-two-files", two_files)
    agents = [{**WRITER, "name": "two", "model": "scripted:tw-two-files"}]
    config = {"workspace": str(repo)}
    async with await Keel.open(home) as first:
        session = await first.create_session("Write two files", agents, config=config)
        with pytest.raises(Crash):
            await first.run(session.id)
    (worktree,) = task_worktrees(home, session.id)
    assert (worktree / "first.txt").read_text() == "1\n"

    async with await Keel.open(home) as second:
        finished = await second.resume(session.id)
        events = await second.events.read(session.id)
        workspace = await session_files(second, session.id)

    assert finished.status is SessionStatus.DONE
    (opened,) = of(events, kinds.WORKSPACE_TASK_OPENED)
    assert opened.payload["path"] == str(worktree)
    (merged,) = of(events, kinds.WORKSPACE_MERGED)
    assert merged.payload["files"] == ["first.txt", "second.txt"]
    assert (workspace.path / "first.txt").read_text() == "1\n"
    assert (workspace.path / "second.txt").read_text() == "2\n"


class CrashingMerges(WorkspaceManager):
    """The real manager, but the process dies once, right after `where` in a merge."""

    def __init__(self, home: Path, where: str) -> None:
        super().__init__(home)
        self.where = where
        self.crashed = False

    def _crash_at(self, step: str) -> None:
        if step == self.where and not self.crashed:
            self.crashed = True
            raise Crash

    async def merge_back(self, child: Workspace, *, remove: bool = True) -> MergeResult:
        result = await super().merge_back(child, remove=remove)
        self._crash_at("merged")
        return result

    async def discard_task(self, child: Workspace) -> None:
        self._crash_at("removing")
        await super().discard_task(child)


@pytest.mark.parametrize("where", ["removing", "merged"])
async def test_a_merge_cut_short_by_a_crash_is_not_applied_twice_on_resume(
    home: Path, repo: Path, where: str
) -> None:
    register_script("tw-one-file", writer_script)
    agents = [{**WRITER, "model": "scripted:tw-one-file"}]
    config = {"workspace": str(repo)}
    async with await Keel.open(home) as first:
        first.workspaces = crashing = CrashingMerges(first.settings.home, where)
        session = await first.create_session("Write one.txt with one", agents, config=config)
        with pytest.raises(Crash):
            await first.run(session.id)
    assert crashing.crashed
    workspace = await first.workspaces.find_session(session.id)
    assert (workspace.path / "one.txt").read_text() == "one\n"  # merged before the crash

    async with await Keel.open(home) as second:
        finished = await second.resume(session.id)
        events = await second.events.read(session.id)

    assert finished.status is SessionStatus.DONE
    (merged,) = of(events, kinds.WORKSPACE_MERGED)
    assert merged.payload["files"] == ["one.txt"]  # the merge recorded before the crash
    labels = [s.label for s in await list_snapshots(workspace)]
    assert labels.count(f"merge task {merged.task_id}") == 1
    assert (workspace.path / "one.txt").read_text() == "one\n"
    assert task_worktrees(home, session.id) == []
    assert git(repo, "branch", "--list", f"keel/{session.id}.*") == ""
