"""Workflow files: the format a workflow is written in, and reading it.

    name: fix-and-verify
    start: investigate
    permissions: [{level: L3, scope: shell:exec}]   # what the tool steps may do
    nodes:
      investigate: {agent: tester, goal: "Run the tests and report what fails", next: fix}
      fix: {agent: coder, goal: "Fix it: {investigate}", retry: {maxAttempts: 2}, next: checks}
      checks: {parallel: [unit, compile], join: all, next: decide}
      unit: {tool: run_command, args: {command: python3 -m unittest}, timeoutS: 300}
      compile: {tool: run_command, args: {command: python3 -m compileall -q .}}
      decide: {if: "'exit code 0' in unit", then: ship, else: fix}
      ship: {approval: "Tests pass. Merge {fix}?"}

A node does one thing: an agent step (`agent`, `goal`), a tool step (`tool`, `args`), a
parallel fan-out (`parallel`, `join: all | fail_fast`), a condition (`if`, `then`, `else`)
or an approval gate (`approval`). `next`, `then` and `else` name a node, or `done` / `failed`
to end the path there; a node without `next` ends its path (a branch of a fan-out, or the
workflow). Loops are allowed only through a condition, and no node runs more than
`maxVisits` times (per node, default the workflow's `maxVisits`, 3).

This module reads the format (`parse_workflow` checks the node kinds and their fields);
`workflow_checks` checks what the format alone cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from keel.config_files import read_yaml
from keel.errors import ValidationFailed
from keel.types import (
    NAME_PATTERN,
    AgentDefinition,
    JsonObject,
    KeelModel,
    Permission,
    describe_validation_error,
)

DONE = "done"
FAILED = "failed"
ENDS = (DONE, FAILED)
RUNNER = "workflow"
"""The agent name the tool steps run as, with the workflow's `permissions`."""

DEFAULT_MAX_VISITS = 3
NODE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class WorkflowError(ValidationFailed):
    """A workflow file or spec is invalid; `problems` names each node and field."""

    def lines(self) -> list[str]:
        return [f"{field}: {message}" for field, message in self.problems]


class RetrySpec(KeelModel):
    """How often a failed agent or tool step is tried, and how long to wait in between."""

    max_attempts: int = Field(default=2, ge=1, le=20)
    backoff_s: float = Field(default=1.0, ge=0, le=600, description="Before the 2nd attempt.")
    max_backoff_s: float = Field(default=60.0, gt=0, le=3600, description="Doubling stops here.")

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before attempt `attempt + 1`, after attempt `attempt` failed."""
        return float(min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1)))


class AgentNode(KeelModel):
    agent: str
    goal: str = Field(min_length=1, description="A template: {node} is that node's output.")
    next: str | None = None
    retry: RetrySpec | None = None
    timeout_s: float | None = Field(default=None, gt=0, description="Active time per attempt.")
    max_visits: int | None = Field(default=None, ge=1, le=1000)


class ToolNode(KeelModel):
    tool: str
    args: JsonObject = Field(default_factory=dict)
    next: str | None = None
    retry: RetrySpec | None = None
    timeout_s: float | None = Field(default=None, gt=0, description="Per attempt.")
    max_visits: int | None = Field(default=None, ge=1, le=1000)


class ParallelNode(KeelModel):
    parallel: list[str] = Field(min_length=1, description="The first node of each branch.")
    join: Literal["all", "fail_fast"] = "all"
    next: str | None = None
    max_visits: int | None = Field(default=None, ge=1, le=1000)


class ConditionNode(KeelModel):
    condition: str = Field(alias="if", min_length=1)
    then: str
    otherwise: str = Field(alias="else")
    max_visits: int | None = Field(default=None, ge=1, le=1000)


class ApprovalNode(KeelModel):
    approval: str = Field(min_length=1, description="The question; a template.")
    next: str | None = None
    timeout_s: float | None = Field(
        default=None, gt=0, description="How long to wait for an answer (then a deny)."
    )
    max_visits: int | None = Field(default=None, ge=1, le=1000)


WorkflowNode = AgentNode | ToolNode | ParallelNode | ConditionNode | ApprovalNode

KINDS: dict[str, type[WorkflowNode]] = {
    "agent": AgentNode,
    "tool": ToolNode,
    "parallel": ParallelNode,
    "if": ConditionNode,
    "approval": ApprovalNode,
}


NodeKind = Literal["agent", "tool", "parallel", "condition", "approval"]


def kind_of(node: WorkflowNode) -> NodeKind:
    """`agent`, `tool`, `parallel`, `condition` or `approval`."""
    match node:
        case AgentNode():
            return "agent"
        case ToolNode():
            return "tool"
        case ParallelNode():
            return "parallel"
        case ConditionNode():
            return "condition"
        case ApprovalNode():
            return "approval"
    raise AssertionError(node)


def edges(node: WorkflowNode) -> Iterator[tuple[str, str]]:
    """(field, target) of the edges a path follows from `node` (not into branches)."""
    if isinstance(node, ConditionNode):
        yield "then", node.then
        yield "else", node.otherwise
    elif node.next is not None:
        yield "next", node.next


class WorkflowSpec(KeelModel):
    name: str = Field(pattern=NAME_PATTERN)
    goal: str | None = Field(default=None, description="The session's goal, as users see it.")
    start: str | None = None
    max_visits: int = Field(default=DEFAULT_MAX_VISITS, ge=1, le=1000)
    permissions: list[Permission] = Field(
        default_factory=list, description="What the tool steps may do."
    )
    output: str | None = Field(
        default=None, description="The final answer, a template; default: the last output."
    )
    nodes: dict[str, WorkflowNode]

    @property
    def session_goal(self) -> str:
        return self.goal or f"Run the workflow {self.name}"

    def visits_allowed(self, name: str) -> int:
        return self.nodes[name].max_visits or self.max_visits

    def runner(self) -> AgentDefinition:
        """The agent the tool steps run as: their tools, the workflow's permissions."""
        tools = sorted({n.tool for n in self.nodes.values() if isinstance(n, ToolNode)})
        return AgentDefinition(
            name=RUNNER,
            role=RUNNER,
            model="scripted:echo",
            tools=tools,
            permissions=self.permissions,
        )

    def to_json(self) -> JsonObject:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- reading ------------------------------------------------------------------------------


def parse_workflow(data: Any, subject: str) -> WorkflowSpec:
    """Validate the structure of a workflow (a mapping, as in the file)."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise WorkflowError(subject, [("(root)", f"expected a mapping, found {kind}")])
    problems: list[tuple[str, str]] = []
    raw = data.get("nodes")
    nodes: dict[str, WorkflowNode] = {}
    if not isinstance(raw, dict) or not raw:
        problems.append(("nodes", "the workflow needs nodes: a mapping of name to node"))
        raw = {}
    for name, body in raw.items():
        where = f"nodes.{name}"
        if not isinstance(body, dict):
            problems.append((where, "expected a mapping such as {agent: coder, goal: ...}"))
            continue
        keys = [key for key in KINDS if key in body]
        if len(keys) != 1:
            said = f"has {' and '.join(repr(k) for k in keys)}" if keys else "says nothing"
            problems.append(
                (where, f"{said}; a node does one thing: agent, tool, parallel, if or approval")
            )
            continue
        try:
            nodes[str(name)] = KINDS[keys[0]].model_validate(body)
        except ValidationError as error:
            problems += [(f"{where}.{f}", m) for f, m in describe_validation_error(error)]
    try:
        spec = WorkflowSpec.model_validate({**data, "nodes": nodes})
    except ValidationError as error:
        problems += describe_validation_error(error)
    if problems:
        raise WorkflowError(subject, problems)
    return spec


def load_workflow(path: Path) -> WorkflowSpec:
    """Read and parse a workflow file (YAML or JSON)."""
    return parse_workflow(read_yaml(path, WorkflowError), str(path))


def read_workflow(source: Path | str | JsonObject | WorkflowSpec) -> tuple[WorkflowSpec, str]:
    """A workflow from a file path, a mapping or a spec, and how errors name it."""
    if isinstance(source, WorkflowSpec):
        return source, f"workflow '{source.name}'"
    if isinstance(source, dict):
        subject = f"workflow '{source.get('name', '?')}'"
        return parse_workflow(source, subject), subject
    return load_workflow(Path(source)), str(source)
