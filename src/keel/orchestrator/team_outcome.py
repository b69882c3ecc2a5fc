"""How a team session ends: done, with the reviewer's answer (or the last answers), or
failed, saying why (a failed task, a blocked one); and how its tasks are cancelled, with
whatever depends on them or was delegated by them."""

from __future__ import annotations

from collections.abc import Collection

from keel.orchestrator.team_state import TeamState
from keel.orchestrator.unit import Outcome, Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.types import JsonObject, SessionStatus, TaskStatus


def outcome(state: TeamState, unit: Unit) -> Outcome:
    """The session's end, with its tasks' final statuses buffered in `unit`."""
    root_id, run_id = state.root_task_id, unit.run_id
    usage = state.total_usage()
    summary: JsonObject = {
        "tasks": len(state.order),
        "usage": {"inputTokens": usage.input_tokens, "outputTokens": usage.output_tokens},
        "usageByAgent": {a: u.model_dump() for a, u in state.agent_usage.items()},
        "usageByTask": {t: u.model_dump() for t, u in state.task_usage.items()},
        "activeMs": round(state.elapsed_ms, 1),
    }
    if state.error is not None or state.blocked:
        reasons = [state.error] if state.error is not None else []
        for task_id, why in state.blocked.items():
            blocked = "the session" if task_id == root_id else f"task {task_id}"
            reasons.append(f"{blocked} is blocked: {why}")
        error = "; ".join(reasons)
        unfinished = [
            t
            for t in state.order
            if t not in state.finished and t not in state.blocked and t not in state.merging
        ]
        root_stays = root_id in state.blocked  # blocked, for a person to look at

        def fail(tx: Tx) -> None:
            for task_id in unfinished:
                TaskRegistry.transition_in(
                    tx, run_id, task_id, TaskStatus.CANCELLED, reason="the session failed"
                )
            if not root_stays:
                TaskRegistry.transition_in(tx, run_id, root_id, TaskStatus.FAILED, reason=error)

        unit.do(fail)
        failed: JsonObject = {"reason": error, **summary}
        if state.blocked:
            failed["blocked"] = dict(state.blocked)
        return Outcome(SessionStatus.FAILED, None, failed)
    reviewed = [t for t in state.reviews if t in state.outputs]
    if reviewed:
        answer = state.outputs[reviewed[-1]]
    else:
        answer = "\n".join(
            state.outputs[t] for t in state.order if t in state.outputs and t not in state.parents
        )
    if state.cancelled:
        summary["cancelledTasks"] = list(state.cancelled)
    unit.do(
        lambda tx: TaskRegistry.transition_in(
            tx, run_id, root_id, TaskStatus.DONE, output={"text": answer}
        )
    )
    return Outcome(SessionStatus.DONE, answer, {"finalAnswer": answer, **summary})


def cancel(
    state: TeamState, task_ids: Collection[str] | None, unit: Unit
) -> tuple[TeamState, set[str]]:
    """Cancel `task_ids` (None, or the root task: the whole session), what depends on them
    and what they delegated; the new state and every task id cancelled."""
    # A task waiting for its merge is done: its merge runs on unless the whole session
    # stops, and then its worktree is left, unmerged, until the session is deleted.
    unfinished = [t for t in state.order if t not in state.finished and t not in state.merging]
    if task_ids is None:
        chosen = set(unfinished)
    else:
        asked = set(task_ids)
        related = asked | state.dependents(asked)
        related |= state.descendants(related)
        chosen = {t for t in related if t in unfinished}
    whole = task_ids is None or state.root_task_id in (task_ids or ())
    if whole:
        chosen = set(unfinished)
    order = [t for t in unfinished if t in chosen]
    run_id, root_id = unit.run_id, state.root_task_id
    asked_for = set(task_ids or ())

    def cancel_tasks(tx: Tx) -> None:
        for task_id in order:
            reason = (
                "cancelled" if task_id in asked_for or whole else "a task it needs was cancelled"
            )
            TaskRegistry.transition_in(tx, run_id, task_id, TaskStatus.CANCELLED, reason=reason)
        if whole:
            TaskRegistry.transition_in(
                tx, run_id, root_id, TaskStatus.CANCELLED, reason="the session was cancelled"
            )

    unit.do(cancel_tasks)
    runs = {t: run for t, run in state.runs.items() if t not in chosen}
    new_state = state.model_copy(
        update={
            "runs": runs,
            "planned": True,
            "cancelled": [*state.cancelled, *order],
            "finished": [*state.finished, *order],
        }
    )
    return new_state, chosen | ({root_id} if whole else set())
