"""`keel acp`, driven by the official ACP SDK's client-side connection: a real subprocess
speaking JSON-RPC over stdio, and an editor implemented here that records the session
updates, answers permission requests and serves `fs/*` from the disk."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from acp import PROTOCOL_VERSION, RequestError, spawn_agent_process, text_block
from acp.core import ClientSideConnection
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    PermissionOption,
    ReadTextFileResponse,
    RequestPermissionResponse,
    ToolCallUpdate,
    WriteTextFileResponse,
)

from keel import Keel
from keel.cli.builtin_team import default_team
from keel.cli.demo import DEMO_GOAL
from keel.types import SessionStatus


class Editor:
    """The client side of ACP, as an editor: it shows updates, asks its user (who picks
    `choice`) and reads and writes files for the agent."""

    def __init__(self, choice: str = "allow-once") -> None:
        self.choice = choice
        self.updates: list[Any] = []
        self.permissions: list[tuple[ToolCallUpdate, list[str]]] = []
        self.files: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)
        self.changed.set()

    async def request_permission(
        self,
        session_id: str,
        tool_call: ToolCallUpdate,
        options: list[PermissionOption],
        **kwargs: Any,
    ) -> RequestPermissionResponse:
        self.permissions.append((tool_call, [option.option_id for option in options]))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=self.choice)
        )

    async def read_text_file(
        self, session_id: str, path: str, **kwargs: Any
    ) -> ReadTextFileResponse:
        self.files.append(("read", path))
        return ReadTextFileResponse(content=await asyncio.to_thread(Path(path).read_text))

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse:
        self.files.append(("write", path))
        await asyncio.to_thread(Path(path).write_text, content)
        return WriteTextFileResponse()

    def kinds(self) -> set[str]:
        return {update.session_update for update in self.updates}

    def text(self, kind: str = "agent_message_chunk") -> str:
        return "".join(u.content.text for u in self.updates if u.session_update == kind)

    def plans(self) -> list[list[tuple[str, str]]]:
        return [
            [(entry.content, entry.status) for entry in u.entries]
            for u in self.updates
            if u.session_update == "plan"
        ]


@asynccontextmanager
async def keel_acp(
    editor: Editor, home: Path, log: Path, *args: str
) -> AsyncIterator[ClientSideConnection]:
    with log.open("a") as errors:
        async with spawn_agent_process(
            editor,
            sys.executable,
            "-m",
            "keel.cli",
            "acp",
            *args,
            env={"KEEL_HOME": str(home)},
            transport_kwargs={"stderr": errors.fileno()},
        ) as (conn, _process):
            fs = FileSystemCapabilities(read_text_file=True, write_text_file=True)
            ready = await conn.initialize(
                protocol_version=PROTOCOL_VERSION,
                client_capabilities=ClientCapabilities(fs=fs),
            )
            assert ready.agent_capabilities is not None
            assert ready.agent_capabilities.load_session is True
            yield conn


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    """The agent's stderr; a traceback in it fails the test."""
    path = tmp_path / "acp.log"
    path.touch()
    yield path
    assert "Traceback" not in path.read_text()


async def until(editor: Editor, check: Callable[[], bool], seconds: float = 30) -> None:
    """Wait for the updates `check` looks for."""
    async with asyncio.timeout(seconds):
        while not check():
            editor.changed.clear()
            await editor.changed.wait()


async def test_a_prompt_turn_streams_to_the_editor_asks_it_and_uses_its_files(
    home: Path, log: Path, project: Callable[..., Path]
) -> None:
    repo = project(ask=True)
    editor = Editor(choice="allow-always")
    async with keel_acp(editor, home, log) as conn:
        session = await conn.new_session(cwd=str(repo))
        done = await conn.prompt(session_id=session.session_id, prompt=[text_block(DEMO_GOAL)])

    assert done.stop_reason == "end_turn"
    assert {"agent_message_chunk", "agent_thought_chunk", "plan", "tool_call"} <= editor.kinds()
    assert "tool_call_update" in editor.kinds()
    said = editor.text()
    assert "**coder**: Looking for the code." in said
    assert "The tests pass" in said
    assert '"role": "coder"' in editor.text("agent_thought_chunk")  # the planner's plan

    final_plan = editor.plans()[-1]
    assert [status for _, status in final_plan] == ["completed"] * 4
    assert final_plan[1][0] == "Fix the bug"

    # The tester's first command asked; "allow always" let the second one run unasked.
    ((asked, options),) = editor.permissions
    assert asked.title is not None
    assert asked.title.startswith("tester wants to run_command")
    assert asked.kind == "execute"
    assert options == ["allow-once", "allow-always", "reject"]
    ran = [
        u
        for u in editor.updates
        if u.session_update == "tool_call_update"
        and u.tool_call_id == asked.tool_call_id
        and u.status == "completed"
    ]
    assert len(ran) == 1

    # The coder read and edited calc.py through the editor's fs methods.
    calc = str(repo / "calc.py")
    assert ("read", calc) in editor.files
    assert ("write", calc) in editor.files
    assert "return a + b" in (repo / "calc.py").read_text()

    # A new agent process loads the session: its turn is replayed, nothing is asked.
    replay = Editor()
    async with keel_acp(replay, home, log) as conn:
        await conn.load_session(cwd=str(repo), session_id=session.session_id)
    first = replay.updates[0]
    assert first.session_update == "user_message_chunk"
    assert first.content.text == DEMO_GOAL
    assert replay.text() == said
    assert replay.plans()[-1] == final_plan
    assert replay.permissions == []


async def test_cancelling_a_turn_returns_cancelled(
    home: Path, log: Path, project: Callable[..., Path]
) -> None:
    repo = project()
    editor = Editor()
    async with keel_acp(editor, home, log, "--scripted-delay", "300") as conn:
        session = await conn.new_session(cwd=str(repo))
        turn = asyncio.create_task(
            conn.prompt(session_id=session.session_id, prompt=[text_block(DEMO_GOAL)])
        )
        await until(editor, lambda: "plan" in editor.kinds())
        await conn.cancel(session_id=session.session_id)
        async with asyncio.timeout(20):
            done = await turn

    assert done.stop_reason == "cancelled"
    async with await Keel.open(home) as keel:
        (cancelled,) = await keel.sessions.list()
    assert cancelled.status is SessionStatus.CANCELLED


async def test_loading_an_interrupted_session_resumes_it_and_the_next_prompt_follows(
    home: Path, log: Path, project: Callable[..., Path]
) -> None:
    repo = project()
    config = {"workspace": str(repo), "isolate": False}
    async with await Keel.open(home) as keel:
        waiting = await keel.create_session(DEMO_GOAL, default_team(), config=config)

    editor = Editor()
    async with keel_acp(editor, home, log) as conn:
        await conn.load_session(cwd=str(repo), session_id=waiting.id)
        await until(editor, lambda: "Approved." in editor.text())
        assert editor.updates[0].content.text == DEMO_GOAL

        again = await conn.prompt(
            session_id=waiting.id, prompt=[text_block("Run the tests, report the result")]
        )
        assert again.stop_reason == "end_turn"

    async with await Keel.open(home) as keel:
        turns = await keel.sessions.list()
    assert [s.status for s in turns] == [SessionStatus.DONE, SessionStatus.DONE]
    assert [s.goal for s in turns] == ["Run the tests, report the result", DEMO_GOAL]
    assert editor.files
    assert all(path.startswith(str(repo)) for _, path in editor.files)


async def test_bad_requests_are_errors_that_say_what_is_wrong(
    home: Path, log: Path, tmp_path: Path
) -> None:
    async with keel_acp(Editor(), home, log) as conn:
        with pytest.raises(RequestError) as relative:
            await conn.new_session(cwd="not/absolute")
        assert relative.value.data == {"cwd": "not/absolute is not an absolute directory"}
        with pytest.raises(RequestError) as unknown:
            await conn.prompt(session_id="acp_nope", prompt=[text_block("Hi")])
        assert "no session 'acp_nope'" in str(unknown.value.data)
        with pytest.raises(RequestError) as missing:
            await conn.load_session(cwd=str(tmp_path), session_id="s_nope")
        assert "no session 's_nope'" in str(missing.value.data)
        session = await conn.new_session(cwd=str(tmp_path))
        with pytest.raises(RequestError) as empty:
            await conn.prompt(session_id=session.session_id, prompt=[text_block("  ")])
        assert empty.value.data == {"prompt": "the prompt has no text"}
