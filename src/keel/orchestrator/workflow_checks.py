"""The checks a workflow passes before a session runs it, beyond its format.

Each problem names the file, the node and the field: unknown agents (given the session's
agents), unknown tools, tool arguments, the permissions the tool steps need, dangling
edges (`next`, `then`, `else`, `parallel` naming no node), conditions and templates that do
not parse or name no node, a node on two paths (each branch of a fan-out is a path of its
own, so a join knows what it waits for), cycles through no condition (nothing would end
them), a missing start. All problems are reported at once. An unreachable node is a
warning, not an error: it never runs, and a draft may hold one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping

from keel.guardrails import missing_scopes, required_level
from keel.orchestrator.workflow_expr import (
    KEYWORDS,
    ExpressionError,
    condition_names,
    parse_condition,
    template_names,
)
from keel.orchestrator.workflow_spec import (
    DONE,
    ENDS,
    FAILED,
    NODE_NAME_PATTERN,
    RUNNER,
    AgentNode,
    ApprovalNode,
    ConditionNode,
    ParallelNode,
    ToolNode,
    WorkflowError,
    WorkflowNode,
    WorkflowSpec,
    edges,
    kind_of,
)
from keel.tools import Tool, ToolError, builtin_tools
from keel.tools.blackboard import BLACKBOARD_TOOL_NAMES
from keel.tools.orchestration import ORCHESTRATION_TOOLS


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
