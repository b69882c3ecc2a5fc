"""Plans: what a planner agent returns, validated before the orchestrator uses it."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from keel.errors import PlanError
from keel.types import describe_validation_error

MAX_PLANNED_TASKS = 500

PLAN_FORMAT = (
    'Answer with JSON only: {"tasks": [{"goal": "<sub-task goal>", "role": "<agent role>", '
    '"dependsOn": [<indexes of earlier tasks it needs>]}]} with 1 to '
    f"{MAX_PLANNED_TASKS} sub-tasks. Without dependsOn a task waits for the one before it; "
    "tasks whose dependsOn is [] or names only finished tasks run in parallel."
)


class PlannedTask(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    goal: str = Field(min_length=1)
    role: str = Field(default="worker", min_length=1)
    capabilities: list[str] = Field(default_factory=list)
    depends_on: list[int] | None = Field(default=None, alias="dependsOn")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[PlannedTask] = Field(min_length=1, max_length=MAX_PLANNED_TASKS)

    @model_validator(mode="after")
    def _dependencies_point_back(self) -> Plan:
        for index, task in enumerate(self.tasks):
            for needed in task.depends_on or []:
                if not 0 <= needed < index:
                    raise ValueError(
                        f"tasks[{index}].dependsOn names {needed}; a task can only depend on "
                        f"tasks before it (0 to {index - 1})"
                    )
        return self

    def dependencies(self, index: int) -> list[int]:
        """The tasks task `index` waits for: as declared, else the one before it."""
        declared = self.tasks[index].depends_on
        if declared is None:
            return [index - 1] if index > 0 else []
        return sorted(set(declared))


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_plan(text: str) -> Plan:
    """Read a plan from a model's answer: bare JSON or JSON in a fenced block."""
    fenced = _FENCE.search(text)
    body = fenced[1] if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise PlanError(f"the planner's answer is not JSON ({error.msg}); {PLAN_FORMAT}") from None
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        detail = "; ".join(f"{f}: {m}" for f, m in describe_validation_error(error))
        raise PlanError(f"the planner's plan is invalid: {detail}") from None
