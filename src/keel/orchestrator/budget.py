"""Budgets: how many tokens and how much active time a session, and each of its tasks, may
spend. Active time is the time nodes ran; time a crashed session spent waiting for its
resume does not count."""

from __future__ import annotations

from dataclasses import dataclass

from keel.models import Usage
from keel.types import Budget, JsonObject


@dataclass(frozen=True, slots=True)
class Spent:
    tokens: int
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class Overrun:
    scope: str  # "session" or "task"
    limit: str  # "tokens" or "time"
    used: float
    allowed: float

    @property
    def reason(self) -> str:
        unit = "tokens" if self.limit == "tokens" else "ms of active time"
        return (
            f"the {self.scope} budget is spent: {self.used:g} of {self.allowed:g} {unit} "
            f"({self.scope} {'tokensLimit' if self.limit == 'tokens' else 'timeLimitMs'})"
        )

    def to_json(self) -> JsonObject:
        return {
            "scope": self.scope,
            "limit": self.limit,
            "used": self.used,
            "allowed": self.allowed,
        }


def overrun(scope: str, budget: Budget | None, spent: Spent) -> Overrun | None:
    if budget is None:
        return None
    if budget.tokens_limit is not None and spent.tokens >= budget.tokens_limit:
        return Overrun(scope, "tokens", spent.tokens, budget.tokens_limit)
    if budget.time_limit_ms is not None and spent.elapsed_ms >= budget.time_limit_ms:
        return Overrun(scope, "time", round(spent.elapsed_ms, 1), budget.time_limit_ms)
    return None


def remaining_s(budgets: list[tuple[Budget | None, Spent]]) -> float | None:
    """Seconds of active time left under the tightest time limit, if any."""
    left: list[float] = [
        (budget.time_limit_ms - spent.elapsed_ms) / 1000
        for budget, spent in budgets
        if budget is not None and budget.time_limit_ms is not None
    ]
    return max(0.0, min(left)) if left else None


def total(usages: list[Usage]) -> Usage:
    result = Usage()
    for usage in usages:
        result = result + usage
    return result
