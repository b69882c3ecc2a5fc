"""Workflow files: the format, and the checks a workflow passes before a session runs it.

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

Checks, each naming the file and the node and field: the node kinds and fields, unknown
agents (given the session's agents), unknown tools, tool arguments, the permissions the
tool steps need, dangling edges, conditions and templates that do not parse or name no
node, a node on two paths (each branch of a fan-out is a path of its own), unconditional
cycles, a missing start. An unreachable node is a warning: it never runs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from keel.errors import ValidationFailed
from keel.guardrails import missing_scopes, required_level
from keel.orchestrator.workflow_expr import (
    KEYWORDS,
    ExpressionError,
    condition_names,
    parse_condition,
    template_names,
)
from keel.tools import Tool, ToolError, builtin_tools
from keel.tools.blackboard import BLACKBOARD_TOOL_NAMES
from keel.tools.orchestration import ORCHESTRATION_TOOLS
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
    try:
        text = path.read_text("utf-8")
    except OSError as error:
        raise WorkflowError(str(path), [("(file)", error.strerror or str(error))]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(error, "problem", None) or str(error)
        raise WorkflowError(str(path), [(where, f"not valid YAML: {problem}")]) from None
    return parse_workflow(data, str(path))


def read_workflow(source: Path | str | JsonObject | WorkflowSpec) -> tuple[WorkflowSpec, str]:
    """A workflow from a file path, a mapping or a spec, and how errors name it."""
    if isinstance(source, WorkflowSpec):
        return source, f"workflow '{source.name}'"
    if isinstance(source, dict):
        subject = f"workflow '{source.get('name', '?')}'"
        return parse_workflow(source, subject), subject
    return load_workflow(Path(source)), str(source)


# -- checking -----------------------------------------------------------------------------


def check_workflow(
    spec: WorkflowSpec,
    agents: Collection[str],
    *,
    subject: str,
    tools: Mapping[str, Tool] | None = None,
) -> list[str]:
    """Check what the structure cannot: agents, tools, edges, paths and cycles. Raise
    WorkflowError naming every problem; return the warnings (unreachable nodes)."""
    tools = builtin_tools() if tools is None else tools
    problems = _check_agents(agents) + _check_names(spec)
    for name, node in spec.nodes.items():
        problems += _check_node(spec, name, node, agents, tools)
    if problems:
        raise WorkflowError(subject, problems)  # the graph checks need sound edges
    owner, overlaps = _paths(spec)
    problems = overlaps + _cycles(spec)
    if problems:
        raise WorkflowError(subject, problems)
    return [
        f"nodes.{name}: not reachable from start '{spec.start}'; it never runs"
        for name in spec.nodes
        if name not in owner
    ]


def _listed(names: Collection[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _check_agents(agents: Collection[str]) -> list[tuple[str, str]]:
    if RUNNER in agents:
        return [
            (
                "(agents)",
                f"an agent is named '{RUNNER}', the name the workflow's tool steps run as; "
                "rename the agent",
            )
        ]
    return []


def _check_names(spec: WorkflowSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in spec.nodes:
        if name in ENDS:
            problems.append((f"nodes.{name}", f"'{name}' is reserved: as a target it ends a path"))
        elif name in KEYWORDS:
            problems.append((f"nodes.{name}", f"'{name}' is a word of the condition language"))
        elif not re.match(NODE_NAME_PATTERN, name):
            problems.append(
                (f"nodes.{name}", "a node name is a letter, then letters, digits, '_' or '-'")
            )
    if spec.start is None:
        problems.append(
            ("start", f"missing: name the node the workflow starts at ({_listed(spec.nodes)})")
        )
    elif spec.start not in spec.nodes:
        problems.append(("start", f"'{spec.start}' is not a node (nodes: {_listed(spec.nodes)})"))
    if spec.output is not None:
        problems += _check_template(spec, "output", spec.output)
    return problems


def _check_node(
    spec: WorkflowSpec,
    name: str,
    node: WorkflowNode,
    agents: Collection[str],
    tools: Mapping[str, Tool],
) -> list[tuple[str, str]]:
    where = f"nodes.{name}"
    problems: list[tuple[str, str]] = []
    for field, target in edges(node):
        if target not in spec.nodes and target not in ENDS:
            problems.append(
                (
                    f"{where}.{field}",
                    f"'{target}' is not a node (nodes: {_listed(spec.nodes)}; "
                    f"'{DONE}' or '{FAILED}' end the path)",
                )
            )
    match node:
        case AgentNode():
            if node.agent not in agents:
                problems.append(
                    (
                        f"{where}.agent",
                        f"unknown agent '{node.agent}' (the session's agents: {_listed(agents)})",
                    )
                )
            problems += _check_template(spec, f"{where}.goal", node.goal)
        case ToolNode():
            problems += _check_tool(spec, where, node, tools)
        case ParallelNode():
            for index, branch in enumerate(node.parallel):
                field = f"{where}.parallel[{index}]"
                if branch not in spec.nodes:
                    problems.append(
                        (field, f"'{branch}' is not a node (nodes: {_listed(spec.nodes)})")
                    )
                elif branch == name:
                    problems.append((field, "a fan-out cannot be its own branch"))
                elif branch in node.parallel[:index]:
                    problems.append((field, f"'{branch}' is listed twice"))
        case ConditionNode():
            try:
                names = condition_names(parse_condition(node.condition))
            except ExpressionError as error:
                problems.append((f"{where}.if", str(error)))
            else:
                problems += _check_outputs(spec, f"{where}.if", sorted(names))
        case ApprovalNode():
            problems += _check_template(spec, f"{where}.approval", node.approval)
    return problems


def _check_tool(
    spec: WorkflowSpec, where: str, node: ToolNode, tools: Mapping[str, Tool]
) -> list[tuple[str, str]]:
    if node.tool in ORCHESTRATION_TOOLS:
        return [(f"{where}.tool", f"{node.tool} is for agents; use an agent step")]
    known = (set(tools) | BLACKBOARD_TOOL_NAMES) - ORCHESTRATION_TOOLS
    if node.tool not in known:
        return [(f"{where}.tool", f"unknown tool '{node.tool}' (known tools: {_listed(known)})")]
    tool = tools.get(node.tool)
    if tool is None:  # built per agent (the blackboard's): checked when the step runs
        return []
    problems: list[tuple[str, str]] = []
    try:
        tool.validate(node.args)
    except ToolError as error:
        problems.append((f"{where}.args", str(error)))
    missing = missing_scopes(spec.runner(), tool.scopes)
    if missing:
        needs = ", ".join(f"{s} (level {required_level(s).value})" for s in missing)
        problems.append(
            (
                f"{where}.tool",
                f"{node.tool} needs {needs}: grant it under 'permissions' at the top of the "
                "workflow",
            )
        )
    return problems


def _check_template(spec: WorkflowSpec, field: str, template: str) -> list[tuple[str, str]]:
    try:
        names = template_names(template)
    except ExpressionError as error:
        return [(field, str(error))]
    return _check_outputs(spec, field, names)


def _check_outputs(spec: WorkflowSpec, field: str, names: list[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name in dict.fromkeys(names):
        node = spec.nodes.get(name)
        if node is None:
            problems.append((field, f"'{name}' names no node (nodes: {_listed(spec.nodes)})"))
        elif isinstance(node, ParallelNode | ConditionNode):
            problems.append((field, f"'{name}' is a {kind_of(node)} node, which has no output"))
    return problems


def _paths(spec: WorkflowSpec) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Which path each reachable node is on: the main path, or a branch of a fan-out. A
    node on two paths is a problem: a join could not tell where it belongs."""
    assert spec.start is not None
    owner: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    pending = [(spec.start, f"the main path (from '{spec.start}')")]
    while pending:
        first, path = pending.pop(0)
        stack, seen = [first], set[str]()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in owner:
                problems.append(
                    (
                        f"nodes.{name}",
                        f"is on {owner[name]} and on {path}; a node belongs to one path "
                        "(give the second use a node of its own)",
                    )
                )
                continue
            owner[name] = path
            node = spec.nodes[name]
            stack += [target for _, target in edges(node) if target in spec.nodes]
            if isinstance(node, ParallelNode):
                pending += [(b, f"branch '{b}' of '{name}'") for b in node.parallel]
    return owner, problems


def _cycles(spec: WorkflowSpec) -> list[tuple[str, str]]:
    """Cycles that pass through no condition: nothing would ever end them."""

    def followed(node: WorkflowNode) -> list[str]:
        targets = [t for _, t in edges(node)]
        if isinstance(node, ParallelNode):
            targets += node.parallel
        return [t for t in targets if t in spec.nodes and t not in conditions]

    conditions = {n for n, node in spec.nodes.items() if isinstance(node, ConditionNode)}
    graph = {n: followed(node) for n, node in spec.nodes.items() if n not in conditions}
    problems: list[tuple[str, str]] = []
    reported: set[frozenset[str]] = set()
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        on_stack = [root]
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_stack.pop()
                done.add(name)
            elif child in on_stack:
                cycle = [*on_stack[on_stack.index(child) :], child]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    problems.append(
                        (
                            f"nodes.{child}",
                            f"an unconditional cycle: {' -> '.join(cycle)}; a loop must pass "
                            "through a condition ('if') so that it can end",
                        )
                    )
            elif child not in done:
                stack.append((child, iter(graph[child])))
                on_stack.append(child)
    return problems
