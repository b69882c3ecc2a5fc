"""What an editor sees of a Keel session: its events turned into Agent Client Protocol
`session/update` notifications. The same translation serves a live turn and the replay of
`session/load`, so both look alike.

- the agents' text (streamed model deltas, or the whole message when a model does not
  stream) is `agent_message_chunk`, each agent's turn headed by its name; the planner's
  text (a plan node) is `agent_thought_chunk`, its result is the plan;
- the task tree below the session's root task is the `plan`, sent again whenever a task is
  created or changes status;
- a tool call is a `tool_call` when it starts and a `tool_call_update` when it waits for
  an approval, runs again after one, or ends (`completed` or `failed`, with its output).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acp import (
    plan_entry,
    start_tool_call,
    text_block,
    tool_content,
    tool_diff_content,
    update_agent_message_text,
    update_agent_thought_text,
    update_plan,
    update_tool_call,
)
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    PlanEntry,
    PlanEntryStatus,
    ToolCallLocation,
    ToolCallProgress,
    ToolCallStart,
    ToolCallUpdate,
    ToolKind,
)

from keel.events import kinds
from keel.types import JsonObject, TraceEvent

SessionUpdate = (
    AgentMessageChunk | AgentThoughtChunk | AgentPlanUpdate | ToolCallStart | ToolCallProgress
)

TOOL_KINDS: dict[str, ToolKind] = {
    "read_file": "read",
    "list_dir": "search",
    "glob": "search",
    "grep": "search",
    "write_file": "edit",
    "edit_file": "edit",
    "run_command": "execute",
    "delegate": "think",
    "handoff": "think",
}
PLAN_STATUS: dict[str, PlanEntryStatus] = {
    "pending": "pending",
    "blocked": "pending",
    "running": "in_progress",
    "done": "completed",
    "failed": "completed",
    "cancelled": "completed",
}
TITLE_ARGUMENT = ("command", "path", "pattern", "goal", "agent")


def tool_title(tool: str, arguments: JsonObject) -> str:
    """`run_command: pytest -q`: the tool and the argument that says most about the call."""
    for name in TITLE_ARGUMENT:
        value = arguments.get(name)
        if isinstance(value, str) and value:
            shown = " ".join(value.split())
            return f"{tool}: {shown[:120]}"
    return tool


@dataclass
class _Task:
    goal: str
    root: bool
    status: str = "pending"

    @property
    def entry(self) -> str:
        """The plan entry's text; ACP has no failed status, so the text says it."""
        if self.status in ("failed", "cancelled"):
            return f"{self.goal} ({self.status})"
        return self.goal


class SessionUpdates:
    """Translates one Keel session's events, in order, into session updates."""

    def __init__(self, workspace: Path | None) -> None:
        self._workspace = workspace
        self._tasks: dict[str, _Task] = {}
        self._node_kinds: dict[str, str] = {}
        self._streamed: set[str] = set()
        self._speaker: str | None = None
        self._message = ""
        """What the agent speaking now has said so far, without its header."""
        self._message_ended = False
        self._streams_used: set[bool] = set()
        """Whether the thought stream (True) and the message stream (False) have text."""
        self._started_calls: set[str] = set()
        self._plan: list[PlanEntry] = []
        self.token_budget_spent = False

    @staticmethod
    def call_id(task_id: str | None, call_id: object) -> str:
        """A tool call's id for the editor: call ids repeat across tasks, so both."""
        return f"{task_id or 'session'}/{call_id}"

    def updates(self, event: TraceEvent) -> list[SessionUpdate]:
        p = event.payload
        match event.type:
            case kinds.TASK_CREATED if event.task_id:
                self._tasks[event.task_id] = _Task(str(p.get("goal", "")), not p.get("parentId"))
                return self._plan_update()
            case kinds.TASK_STATUS if event.task_id in self._tasks:
                self._tasks[event.task_id].status = str(p.get("to"))
                return self._plan_update()
            case kinds.NODE_ENTER if event.task_id:
                self._node_kinds[event.task_id] = str(p.get("kind"))
            case kinds.MODEL_DELTA:
                self._streamed.add(event.task_id or "")
                return self._text(event, str(p.get("text", "")))
            case kinds.AGENT_MESSAGE:  # the whole message: shown unless it was streamed
                task_id = event.task_id or ""
                shown = [] if task_id in self._streamed else self._text(event, str(p.get("text")))
                self._streamed.discard(task_id)
                self._message_ended = True
                return shown
            case kinds.TOOL_CALL:
                return [self._tool_call(event)]
            case kinds.APPROVAL_REQUESTED:
                call = self.call_id(event.task_id, p.get("callId"))
                return [update_tool_call(call, status="pending")]
            case kinds.TOOL_RESULT:
                call = self.call_id(event.task_id, p.get("callId"))
                output = str(p.get("output", ""))
                return [
                    update_tool_call(
                        call,
                        status="completed" if p.get("ok") else "failed",
                        content=[tool_content(text_block(output))] if output else None,
                        raw_output=output,
                    )
                ]
            case kinds.BUDGET_EXCEEDED if p.get("limit") == "tokens":
                self.token_budget_spent = True
            case kinds.SESSION_COMPLETED:
                answer = str(p.get("finalAnswer") or "").strip()
                if answer and answer != self._message.strip():
                    return [update_agent_message_text(self._gap() + answer)]
            case kinds.SESSION_FAILED:
                reason = str(p.get("reason") or "no reason given")
                return [update_agent_message_text(f"{self._gap()}The session failed: {reason}")]
        return []

    def permission_call(self, event: TraceEvent) -> ToolCallUpdate:
        """The tool call an `approval.requested` event asks about, for a permission request."""
        p = event.payload
        tool = str(p.get("tool", ""))
        arguments = p.get("arguments") or {}
        reasons = "; ".join(str(r) for r in p.get("reasons", [])) or "the policy asks"
        return ToolCallUpdate(
            tool_call_id=self.call_id(event.task_id, p.get("callId")),
            title=f"{p.get('agent')} wants to {tool_title(tool, arguments)}",
            kind=TOOL_KINDS.get(tool, "other"),
            status="pending",
            raw_input=arguments,
            content=[tool_content(text_block(f"Why Keel asks: {reasons} (risk {p.get('risk')})"))],
        )

    # -- pieces ----------------------------------------------------------------------------

    def _gap(self, thought: bool = False) -> str:
        """Blank lines before a new speaker, once its stream (message or thought) has text."""
        return "\n\n" if thought in self._streams_used else ""

    def _text(self, event: TraceEvent, text: str) -> list[SessionUpdate]:
        if not text:
            return []
        task_id = event.task_id or ""
        thought = self._node_kinds.get(task_id) == "plan"
        shown = text
        if task_id != self._speaker:
            agent = event.payload.get("agent") or event.actor
            text = text.lstrip()
            shown = f"{self._gap(thought)}**{agent}**: {text}"
            self._speaker = task_id
            self._message = ""
        elif self._message_ended:  # the same agent's next message
            shown = f"\n{text}"
            self._message = ""
        self._message_ended = False
        self._message += text
        self._streams_used.add(thought)
        if thought:
            return [update_agent_thought_text(shown)]
        return [update_agent_message_text(shown)]

    def _plan_update(self) -> list[SessionUpdate]:
        entries = [
            plan_entry(task.entry, status=PLAN_STATUS.get(task.status, "pending"))
            for task in self._tasks.values()
            if not task.root
        ]
        if not entries or entries == self._plan:
            return []
        self._plan = entries
        return [update_plan(entries)]

    def _tool_call(self, event: TraceEvent) -> SessionUpdate:
        p = event.payload
        call = self.call_id(event.task_id, p.get("callId"))
        if call in self._started_calls:  # run again after an approval
            return update_tool_call(call, status="in_progress")
        self._started_calls.add(call)
        tool = str(p.get("tool", ""))
        arguments: dict[str, Any] = p.get("arguments") or {}
        path = arguments.get("path")
        where = self._workspace / path if self._workspace and isinstance(path, str) else None
        content = None
        if where is not None and tool == "edit_file":
            content = [
                tool_diff_content(
                    str(where), str(arguments.get("new", "")), str(arguments.get("old", ""))
                )
            ]
        elif where is not None and tool == "write_file":
            content = [tool_diff_content(str(where), str(arguments.get("content", "")))]
        return start_tool_call(
            call,
            tool_title(tool, arguments),
            kind=TOOL_KINDS.get(tool, "other"),
            status="in_progress",
            content=content,
            locations=[ToolCallLocation(path=str(where))] if where is not None else None,
            raw_input=arguments,
        )
