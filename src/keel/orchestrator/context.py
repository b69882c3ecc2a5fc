"""Context assembly: what an agent is given before each model call, and the record of it.

An agent sees its task's conversation (which starts from its task's goal and what its
parent handed it) and the facts and decisions its memory scope allows — nothing more. The
references of what it saw (fact keys and versions, the conversation's messages, its parent
task) are written as a `context.assembled` event, so anyone can later see exactly what
each agent saw.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from keel.blackboard import Actor, DecisionLog, Fact, FactStore
from keel.blackboard.artifacts import ArtifactStore
from keel.events import kinds
from keel.models import Message
from keel.orchestrator.unit import Unit
from keel.tools import Tool
from keel.tools.blackboard import blackboard_tools
from keel.types import AgentDefinition, JsonObject, MemoryScope

MAX_FACT_CHARS = 500
MAX_FACTS = 100


@dataclass(frozen=True, slots=True)
class Blackboard:
    """The stores agents share, and the project the session belongs to."""

    facts: FactStore
    decisions: DecisionLog
    artifacts: ArtifactStore
    project: str | None

    def actor(self, agent: AgentDefinition, session_id: str, run_id: str, task_id: str) -> Actor:
        return Actor(agent.name, session_id, run_id, agent.memory_scope, self.project, task_id)

    def tools(self, agent: AgentDefinition, run_id: str) -> dict[str, Tool]:
        """The blackboard tools the agent lists, acting with its memory scope."""
        made = blackboard_tools(
            self.facts,
            self.decisions,
            self.artifacts,
            memory_scope=agent.memory_scope,
            run_id=run_id,
            project=self.project,
        )
        return {name: tool for name, tool in made.items() if name in agent.tools}


def _shown(fact: Fact) -> str:
    value = json.dumps(fact.value, ensure_ascii=False)
    if len(value) > MAX_FACT_CHARS:
        value = value[:MAX_FACT_CHARS] + "…"
    return f"- {fact.kind.value} {fact.scope}/{fact.key} (version {fact.version}): {value}"


async def assemble(
    board: Blackboard | None,
    agent: AgentDefinition,
    messages: Sequence[Message],
    unit: Unit,
    task_id: str,
    parent_id: str | None,
) -> list[Message]:
    """The messages for the agent's next model call, recording what went into them."""
    facts: list[Fact] = []
    if board is not None and agent.memory_scope is not MemoryScope.NONE:
        actor = board.actor(agent, unit.session_id, unit.run_id, task_id)
        facts = (await board.facts.visible(actor))[:MAX_FACTS]
    reference: JsonObject = {
        "agent": agent.name,
        "memoryScope": agent.memory_scope.value,
        "facts": [
            {"scope": f.scope, "key": f.key, "version": f.version, "kind": f.kind.value}
            for f in facts
        ],
        "messages": [f"{task_id}:{index}:{m.role}" for index, m in enumerate(messages)],
    }
    if parent_id is not None:
        reference["parentTaskId"] = parent_id
    unit.emit(kinds.CONTEXT_ASSEMBLED, reference, task_id=task_id, actor=agent.name)
    if not facts:
        return list(messages)
    known = Message(
        role="system",
        content="What the blackboard holds that you may use:\n" + "\n".join(map(_shown, facts)),
    )
    head = 1 if messages and messages[0].role == "system" else 0
    return [*messages[:head], known, *messages[head:]]
