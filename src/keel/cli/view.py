"""What the terminal shows of a session: its task tree and its events, built from the
event log alone, so a live view and a replay look the same."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from keel.events import kinds
from keel.types import JsonObject, TraceEvent

STATUS_STYLE = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "blocked": ("‖", "magenta"),
    "done": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "cancelled": ("⊘", "dim red"),
}


def _clip(text: str, width: int = 72) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def describe(event: TraceEvent) -> str:
    """One line saying what an event means."""
    p: JsonObject = event.payload
    match event.type:
        case kinds.SESSION_CREATED:
            return f"goal: {_clip(str(p.get('goal', '')))}"
        case kinds.SESSION_STARTED | kinds.SESSION_RESUMED:
            where = f" at step {p['step']} ({p.get('node')})" if "step" in p else ""
            return f"run {p.get('runId')}{where}"
        case kinds.SESSION_QUEUED:
            return "waiting for a worker"
        case kinds.SESSION_CLAIMED:
            return f"worker {p.get('workerId')} runs it (claim {p.get('claim')})"
        case kinds.SESSION_MESSAGE:
            return f"#{p.get('number')} from {event.actor}: {_clip(str(p.get('text', '')), 60)}"
        case kinds.A2A_TASK_OPENED:
            return f"A2A task of {event.actor}, context {p.get('contextId')}"
        case kinds.CANCEL_REQUESTED:
            what = f"task {p['taskId']}" if p.get("taskId") else "the session"
            return f"{what}: {_clip(str(p.get('reason', '')), 60)}"
        case kinds.TASK_CREATED:
            agent = f" → {p['assignedAgent']}" if p.get("assignedAgent") else ""
            return f"{_clip(str(p.get('goal', '')), 60)}{agent}"
        case kinds.TASK_STATUS:
            reason = f" ({_clip(str(p['reason']), 50)})" if p.get("reason") else ""
            return f"{p.get('from')} → {p.get('to')}{reason}"
        case kinds.NODE_ENTER | kinds.NODE_EXIT:
            return str(p.get("node", ""))
        case kinds.MODEL_CALL:
            return (
                f"{p.get('agent')} {p.get('model')}: {p.get('inputTokens')} in, "
                f"{p.get('outputTokens')} out, {p.get('durationMs')} ms"
            )
        case kinds.AGENT_MESSAGE:
            return f"{p.get('agent')}: {_clip(str(p.get('text', '')), 64)}"
        case kinds.PLAN_CREATED:
            return f"{len(p.get('tasks', []))} tasks from {p.get('source')}"
        case kinds.ROUTE_DECIDED:
            return f"→ {p.get('agent')}: {p.get('reason')}"
        case kinds.TOOL_CALL:
            args = ", ".join(
                f"{k}={_clip(str(v), 40)!s}" for k, v in p.get("arguments", {}).items()
            )
            return f"{p.get('tool')}({args})"
        case kinds.TOOL_RESULT:
            mark = "ok" if p.get("ok") else "error"
            output = _clip(str(p.get("output", "")), 60)
            return f"{p.get('tool')} {mark} in {p.get('durationMs')} ms: {output}"
        case kinds.TASK_DELEGATED:
            return f"→ {p.get('agent')} ({p.get('role')}): {p.get('goal')}"
        case kinds.HANDOFF:
            note = f": {p['note']}" if p.get("note") else ""
            return f"{p.get('from')} → {p.get('to')}{note}"
        case kinds.APPROVAL_REQUESTED:
            return (
                f"{p.get('agent')} asks to run {p.get('tool')}: {'; '.join(p.get('reasons', []))}"
            )
        case kinds.APPROVAL_ANSWERED | kinds.APPROVAL_APPLIED:
            by = f" by {p['by']}" if p.get("by") else ""
            return f"{p.get('approvalId')} {p.get('decision')}{by}"
        case kinds.GUARDRAIL_DECISION:
            return f"{p.get('verdict')} {p.get('tool')}: {'; '.join(p.get('reasons', []))}"
        case kinds.MODEL_DELTA:
            return f"{p.get('agent')} … {_clip(str(p.get('text', '')), 60)}"
        case kinds.MODEL_RETRY:
            error = _clip(str(p.get("error", "")), 50)
            wait = f"{p.get('delayS', 0):.1f} s"
            return f"{p.get('agent')} attempt {p.get('attempt')} failed, retry in {wait}: {error}"
        case kinds.BUDGET_EXCEEDED:
            return f"{p.get('scope')} {p.get('limit')}: {p.get('used')} of {p.get('allowed')}"
        case kinds.TOOL_INTERRUPTED:
            return f"{p.get('tool')} was interrupted by a crash and not re-run"
        case kinds.WORKFLOW_STEP_STARTED:
            return f"{p.get('node')} ({p.get('kind')}, attempt {p.get('attempt')})"
        case kinds.WORKFLOW_STEP_FINISHED:
            after = f" → {p['next']}" if p.get("next") else ""
            return f"{p.get('node')} {p.get('status')}{after}"
        case kinds.WORKFLOW_STEP_RETRY:
            return f"{p.get('node')} again: {_clip(str(p.get('reason', '')), 60)}"
        case kinds.WORKFLOW_BRANCH:
            return f"{p.get('expression', p.get('node', ''))} is {p.get('value')} → {p.get('next')}"
        case kinds.WORKFLOW_JOIN:
            return f"{p.get('node', 'join')}: {'all branches done' if p.get('ok') else 'failed'}"
        case kinds.WORKSPACE_OPENED:
            branch = f" on {p['branch']}" if p.get("branch") else ""
            return f"{p.get('kind')} {p.get('path')}{branch}"
        case kinds.WORKSPACE_SNAPSHOT:
            return f"snapshot {p.get('number')} ({p.get('commit')}): {p.get('label')}"
        case kinds.WORKSPACE_TASK_OPENED:
            return f"{p.get('path')}, from task {p.get('parentTaskId')}'s files"
        case kinds.WORKSPACE_MERGED:
            files = _clip(", ".join(p.get("files", [])), 50) or "no change"
            snap = f" (snapshot {p['snapshot']})" if "snapshot" in p else ""
            return f"into task {p.get('into')}: {files}{snap}"
        case kinds.WORKSPACE_MERGE_CONFLICT:
            if "files" not in p:  # the merge itself failed
                return f"not merged into task {p.get('into')}: {_clip(str(p.get('reason')), 60)}"
            files = _clip(", ".join(p.get("files", [])), 40)
            kept = f", the conflict as {p['artifactId']}" if p.get("artifactId") else ""
            return f"with task {p.get('into')} in {files}; kept on {p.get('branch')}{kept}"
        case kinds.WORKSPACE_TASK_DISCARDED:
            artifact = p.get("artifactId")
            change = f"its change is {artifact}" if artifact else "no change"
            return f"{p.get('branch')} removed unmerged; {change}"
        case kinds.CONTEXT_ASSEMBLED:
            seen = f"{len(p.get('messages', []))} messages, {len(p.get('facts', []))} facts"
            return f"{p.get('agent')} sees {seen} ({p.get('memoryScope')} memory)"
        case kinds.FACT_WRITTEN | kinds.DECISION_RECORDED:
            said = f": {_clip(str(p['decision']), 40)}" if "decision" in p else ""
            return f"{p.get('key')} v{p.get('version')} in {p.get('scope')}{said}"
        case kinds.ARTIFACT_STORED:
            return f"{p.get('artifactId')} {p.get('name')} ({p.get('type')}, {p.get('size')} bytes)"
        case kinds.ARTIFACT_LINKED:
            return f"{p.get('artifactId')} → task {p.get('taskId')}"
        case kinds.BLACKBOARD_DENIED:
            return f"{p.get('agent')} may not {p.get('action')}: {_clip(str(p.get('reason')), 60)}"
        case kinds.SESSION_COMPLETED:
            return _clip(str(p.get("finalAnswer", "")))
        case kinds.SESSION_FAILED | kinds.SESSION_CANCELLED:
            return _clip(str(p.get("reason", "")))
    return _clip(str(p))


def event_line(event: TraceEvent) -> Text:
    stamp = event.timestamp.strftime("%H:%M:%S.%f")[:-3]
    style = (
        "red" if event.type in (kinds.SESSION_FAILED, kinds.WORKSPACE_MERGE_CONFLICT) else "cyan"
    )
    line = Text()
    line.append(f"{event.seq:>5} ", "dim")
    line.append(f"{stamp} ", "dim")
    line.append(f"{event.type:<20} ", style)
    line.append(describe(event))
    return line


@dataclass
class _TaskView:
    goal: str
    parent: str | None
    agent: str | None
    status: str = "pending"


@dataclass
class SessionView:
    """The state of one session as its events tell it."""

    session_id: str
    recent: deque[TraceEvent] = field(default_factory=lambda: deque(maxlen=10))
    tasks: dict[str, _TaskView] = field(default_factory=dict)
    events: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    status: str = "pending"
    streaming: str = ""
    workspace: JsonObject = field(default_factory=dict)

    def add(self, event: TraceEvent) -> None:
        self.events += 1
        p = event.payload
        if event.type == kinds.MODEL_DELTA:
            self.streaming = (self.streaming + str(p.get("text", "")))[-400:]
            return
        self.recent.append(event)
        if event.type == kinds.TASK_CREATED and event.task_id:
            self.tasks[event.task_id] = _TaskView(
                p.get("goal", ""), p.get("parentId"), p.get("assignedAgent")
            )
        elif event.type == kinds.TASK_STATUS and event.task_id in self.tasks:
            self.tasks[event.task_id].status = str(p.get("to"))
        elif event.type == kinds.MODEL_CALL:
            self.streaming = ""
            self.input_tokens += int(p.get("inputTokens", 0))
            self.output_tokens += int(p.get("outputTokens", 0))
        elif event.type == kinds.WORKSPACE_OPENED:
            self.workspace = dict(p)
        elif event.type in (kinds.SESSION_STARTED, kinds.SESSION_RESUMED):
            self.status = "running"
        elif event.type in kinds.SESSION_FINAL:
            self.status = event.type.split(".")[1]

    def tree(self) -> Tree:
        tree = Tree(Text(f"session {self.session_id} · {self.status}", "bold"))
        branches: dict[str | None, Tree] = {None: tree}
        for task_id, task in self.tasks.items():
            parent = branches.get(task.parent, tree)
            icon, style = STATUS_STYLE.get(task.status, ("?", ""))
            label = Text()
            label.append(f"{icon} ", style)
            label.append(_clip(task.goal, 60))
            if task.agent:
                label.append(f"  [{task.agent}]", "dim")
            label.append(f"  {task.status}", style)
            branches[task_id] = parent.add(label)
        return tree

    def render(self) -> RenderableType:
        table = Table.grid(padding=0)
        for event in self.recent:
            table.add_row(event_line(event))
        footer = Text(
            f"{self.events} events · {self.input_tokens + self.output_tokens} tokens",
            "dim",
        )
        parts: list[RenderableType] = [self.tree(), Text(""), table]
        if self.streaming:
            parts.append(Text(f"  … {_clip(self.streaming, 100)}", "italic"))
        return Group(*parts, footer)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for task in self.tasks.values():
            found[task.status] = found.get(task.status, 0) + 1
        return found
