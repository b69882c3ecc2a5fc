"""Whole sessions on a real provider client: an agent on `openai:` and one on `anthropic:`
talk through the official SDKs to local wire-protocol servers, call tools, survive a rate
limit, and stream their text as events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wire import StreamedCall, WireServer, anthropic_reply, openai_error, openai_reply

from keel import Keel
from keel.events import kinds
from keel.types import SessionStatus


def events_of(events: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.type == kind]


async def test_an_openai_agent_reads_a_file_and_answers_through_a_rate_limit(
    keel: Keel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("the answer is 42\n")
    async with WireServer() as server:
        monkeypatch.setenv("KEEL_OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("KEEL_OPENAI_BASE_URL", f"{server.url}/v1")
        server.reply(
            openai_reply(
                "Let me look.",
                calls=[StreamedCall("call_a", "read_file", ['{"pa', 'th": "notes.txt"}'])],
                usage=(40, 10),
            ),
            openai_error(429, "slow down", headers={"retry-after": "0"}),
            openai_reply("The notes say ", "the answer is 42.", usage=(60, 8)),
        )
        session = await keel.create_session(
            "What do the notes say?",
            [
                {
                    "name": "reader",
                    "role": "worker",
                    "model": "openai:gpt-test",
                    "tools": ["read_file"],
                    "permissions": [{"level": "L1", "scope": "file:read"}],
                }
            ],
            config={"workspace": str(tmp_path)},
        )
        finished = await keel.run(session.id)
        events = await keel.events.read(session.id)

    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "The notes say the answer is 42."
    assert [r["output"] for r in events_of(events, kinds.TOOL_RESULT)] == [
        "     1\tthe answer is 42"
    ]
    (retry,) = events_of(events, kinds.MODEL_RETRY)
    assert "slow down" in retry["error"]
    calls = events_of(events, kinds.MODEL_CALL)
    assert [(c["inputTokens"], c["outputTokens"]) for c in calls] == [(40, 10), (60, 8)]
    assert "".join(d["text"] for d in events_of(events, kinds.MODEL_DELTA)).endswith("42.")
    second = server.requests[-1].body
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": "     1\tthe answer is 42",
    }
    assert second["tools"][0]["function"]["name"] == "read_file"
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_an_anthropic_agent_with_a_missing_key_fails_with_the_variable_named(
    keel: Keel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KEEL_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    session = await keel.create_session(
        "Say hi", [{"name": "claude", "role": "worker", "model": "anthropic:claude-test"}]
    )
    finished = await keel.run(session.id)
    reason = events_of(await keel.events.read(session.id), kinds.SESSION_FAILED)[0]["reason"]
    assert finished.status is SessionStatus.FAILED
    assert "KEEL_ANTHROPIC_API_KEY or ANTHROPIC_API_KEY" in reason


async def test_an_anthropic_agent_answers_a_session(
    keel: Keel, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with WireServer() as server:
        monkeypatch.setenv("KEEL_ANTHROPIC_API_KEY", "ak-test")
        monkeypatch.setenv("KEEL_ANTHROPIC_BASE_URL", server.url)
        server.reply(anthropic_reply("Hi ", "there."))
        session = await keel.create_session(
            "Say hi", [{"name": "claude", "role": "worker", "model": "anthropic:claude-test"}]
        )
        finished = await keel.run(session.id)
    assert finished.status is SessionStatus.DONE
    assert finished.final_answer == "Hi there."
    assert server.requests[0].body["model"] == "claude-test"


@pytest.mark.parametrize(
    ("policy", "calls", "status"),
    [
        ({"maxAttempts": 3, "initialDelayS": 0.01}, 2, SessionStatus.DONE),
        ({"maxAttempts": 1}, 1, SessionStatus.FAILED),
        ({"maxAttempts": 3, "retryOn": ["server_error"]}, 1, SessionStatus.FAILED),
    ],
)
async def test_an_agents_retry_policy_decides_which_failures_are_retried(
    keel: Keel,
    monkeypatch: pytest.MonkeyPatch,
    policy: dict[str, Any],
    calls: int,
    status: SessionStatus,
) -> None:
    async with WireServer() as server:
        monkeypatch.setenv("KEEL_OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("KEEL_OPENAI_BASE_URL", f"{server.url}/v1")
        server.reply(openai_error(429, "slow down"), openai_reply("fine"))
        session = await keel.create_session(
            "Say fine",
            [{"name": "a", "role": "worker", "model": "openai:gpt-test", "retry": policy}],
        )
        finished = await keel.run(session.id)
    assert finished.status is status
    assert len(server.requests) == calls
    if status is SessionStatus.FAILED:
        reason = events_of(await keel.events.read(session.id), kinds.SESSION_FAILED)[0]["reason"]
        assert "HTTP 429" in reason
