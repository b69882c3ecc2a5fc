"""Context assembly: before each model call an agent gets its task's conversation and the
facts its memory scope allows, nothing more; `context.assembled` records exactly that."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel import Keel
from keel.events import kinds
from keel.models import Message, ToolCall, ToolSpec, register_script

MEMORY = [{"level": "L2", "scope": "memory:*"}]


def writer(scope: str) -> str:
    name = f"fact-writer-{scope}"

    def script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Message | str:
        if any(m.role == "tool" for m in messages):
            return "noted"
        args = {"key": "db", "value": {"engine": "sqlite"}, "scope": scope}
        return Message(
            role="assistant", tool_calls=[ToolCall(id="w", name="blackboard_write", arguments=args)]
        )

    register_script(name, script)
    return f"scripted:{name}"


seen: dict[str, list[Message]] = {}


def reader(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> str:
    seen[messages[-1].content.splitlines()[0]] = list(messages)
    return "read"


def team(scope: str, reader_scope: str = "session") -> list[dict[str, Any]]:
    register_script("fact-reader", reader)
    register_script(
        "two-steps",
        [json.dumps({"tasks": [{"goal": "write", "role": "w"}, {"goal": "read", "role": "r"}]})],
    )
    return [
        {"name": "planner", "role": "planner", "model": "scripted:two-steps"},
        {
            "name": "writer",
            "role": "w",
            "model": writer(scope),
            "tools": ["blackboard_write"],
            "permissions": MEMORY,
            "memoryScope": "project",
        },
        {
            "name": "reader",
            "role": "r",
            "model": "scripted:fact-reader",
            "memoryScope": reader_scope,
        },
    ]


async def test_a_fact_written_by_one_agent_reaches_the_next_and_is_recorded(
    keel: Keel, tmp_path: Path
) -> None:
    session = await keel.create_session(
        "Decide", team("session"), config={"workspace": str(tmp_path)}
    )
    await keel.run(session.id)
    events = await keel.events.read(session.id)
    assembled = [e.payload for e in events if e.type == kinds.CONTEXT_ASSEMBLED]
    readers = [a for a in assembled if a["agent"] == "reader"]
    assert readers[0]["facts"] == [
        {"scope": f"session:{session.id}", "key": "db", "version": 1, "kind": "fact"}
    ]
    text = "\n".join(m.content for m in seen["Goal: read"])
    assert '"engine": "sqlite"' in text
    written = [e for e in events if e.type == kinds.FACT_WRITTEN]
    assert len(written) == 1


async def test_an_agent_without_memory_sees_no_facts(keel: Keel, tmp_path: Path) -> None:
    session = await keel.create_session(
        "Decide", team("session", reader_scope="none"), config={"workspace": str(tmp_path)}
    )
    await keel.run(session.id)
    events = await keel.events.read(session.id)
    reader_context = [
        e.payload
        for e in events
        if e.type == kinds.CONTEXT_ASSEMBLED and e.payload["agent"] == "reader"
    ]
    assert reader_context[0]["facts"] == []
    assert "blackboard" not in "\n".join(m.content for m in seen["Goal: read"])


async def test_session_facts_stay_in_their_session_and_project_facts_are_shared(
    keel: Keel, tmp_path: Path
) -> None:
    first = await keel.create_session("One", team("session"), config={"workspace": str(tmp_path)})
    await keel.run(first.id)
    shared = await keel.create_session("Two", team("project"), config={"workspace": str(tmp_path)})
    await keel.run(shared.id)
    third = await keel.create_session(
        "Three", team("session", reader_scope="project"), config={"workspace": str(tmp_path)}
    )
    await keel.run(third.id)
    events = await keel.events.read(third.id)
    facts = [
        (f["scope"].split(":")[0], f["key"])
        for e in events
        if e.type == kinds.CONTEXT_ASSEMBLED and e.payload["agent"] == "reader"
        for f in e.payload["facts"]
    ]
    assert ("session", "db") in facts  # its own session's fact
    assert ("project", "db") in facts  # the fact the second session shared
    assert [s for s, _ in facts].count("session") == 1  # not the first session's
