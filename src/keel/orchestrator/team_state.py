"""The checkpointed state of a team session: the plan, where each task stands, the
conversation of the task in progress, the tasks' worktrees and their merges, and what has
been spent."""

from __future__ import annotations

from pydantic import BaseModel, Field

from keel.models import Message, ToolCall, Usage
from keel.orchestrator.budget import Spent, total
from keel.types import Budget


class TaskRun(BaseModel):
    """A task in progress: its conversation and the tool calls still to run."""

    messages: list[Message] = Field(default_factory=list)
    pending: list[ToolCall] = Field(default_factory=list)
    turns: int = 0
    bad_turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    elapsed_ms: float = 0.0
    waiting: dict[str, str] = Field(
        default_factory=dict, description="Delegate calls still open: call id -> child task."
    )
    awaiting: str | None = Field(default=None, description="The approval the task waits for.")
    approved: dict[str, bool] = Field(
        default_factory=dict, description="A person's answers, by call id."
    )

    def spent(self) -> Spent:
        return Spent(self.usage.total, self.elapsed_ms)


class Remembered(BaseModel):
    """A session-scoped rule from an approval answered with `remember`."""

    agent: str
    tool: str
    subject: str


class TeamState(BaseModel):
    root_task_id: str
    planned: bool = False
    order: list[str] = Field(default_factory=list)
    depends: dict[str, list[str]] = Field(default_factory=dict)
    finished: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    cancelled: list[str] = Field(default_factory=list)
    goals: dict[str, str] = Field(default_factory=dict)
    assigned: dict[str, str] = Field(default_factory=dict)
    reviews: list[str] = Field(default_factory=list)
    parents: dict[str, str] = Field(
        default_factory=dict, description="Delegated task -> the task that delegated it."
    )
    budgets: dict[str, Budget] = Field(default_factory=dict)
    remembered: list[Remembered] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)
    runs: dict[str, TaskRun] = Field(default_factory=dict)
    worktrees: dict[str, str] = Field(
        default_factory=dict,
        description="Task -> the worktree of its own (its agent writes), by path.",
    )
    merging: dict[str, str] = Field(
        default_factory=dict,
        description="Task -> its answer: the agent finished; its worktree waits to be merged "
        "into its parent's workspace.",
    )
    blocked: dict[str, str] = Field(
        default_factory=dict,
        description="Task -> why it is blocked: a sub-task's change conflicts with its files "
        "(the root task's, for a planned task).",
    )
    agent_usage: dict[str, Usage] = Field(default_factory=dict)
    task_usage: dict[str, Usage] = Field(default_factory=dict)
    elapsed_ms: float = 0.0
    error: str | None = None

    def descendants(self, task_ids: set[str]) -> set[str]:
        """Every task delegated, directly or not, by one of `task_ids`."""
        found: set[str] = set()
        frontier = set(task_ids)
        while frontier:
            frontier = {child for child, parent in self.parents.items() if parent in frontier}
            found |= frontier
        return found

    def dependents(self, task_ids: set[str]) -> set[str]:
        """Every task that waits, directly or not, on one of `task_ids` (reviews excluded:
        a review looks at whatever finished)."""
        found: set[str] = set()
        frontier = set(task_ids)
        while frontier:
            frontier = {
                t
                for t, needs in self.depends.items()
                if t not in found and t not in self.reviews and frontier & set(needs)
            }
            found |= frontier
        return found

    def total_usage(self) -> Usage:
        return total(list(self.agent_usage.values()))

    def spent(self) -> Spent:
        return Spent(self.total_usage().total, self.elapsed_ms)

    def charged(self, agent: str, task_id: str, usage: Usage, elapsed_ms: float) -> TeamState:
        """This state with `usage` and `elapsed_ms` counted for the agent, task and session."""
        agents = {**self.agent_usage, agent: self.agent_usage.get(agent, Usage()) + usage}
        tasks = {**self.task_usage, task_id: self.task_usage.get(task_id, Usage()) + usage}
        return self.model_copy(
            update={
                "agent_usage": agents,
                "task_usage": tasks,
                "elapsed_ms": self.elapsed_ms + elapsed_ms,
            }
        )
