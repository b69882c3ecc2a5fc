"""Plans: what a planner agent returns, validated before the orchestrator uses it."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keel.errors import PlanError
from keel.types import describe_validation_error

MAX_PLANNED_TASKS = 50

PLAN_FORMAT = (
    'Answer with JSON only: {"tasks": [{"goal": "<sub-task goal>", "role": "<agent role>"}]} '
    f"with 1 to {MAX_PLANNED_TASKS} sub-tasks, in the order they should run."
)


class PlannedTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1)
    role: str = Field(default="worker", min_length=1)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[PlannedTask] = Field(min_length=1, max_length=MAX_PLANNED_TASKS)


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
