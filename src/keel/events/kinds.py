"""The event types Keel writes. Each is `<subject>.<what happened>`."""

from __future__ import annotations

SESSION_CREATED = "session.created"
SESSION_STARTED = "session.started"
SESSION_RESUMED = "session.resumed"
SESSION_COMPLETED = "session.completed"
SESSION_FAILED = "session.failed"
SESSION_CANCELLED = "session.cancelled"
SESSION_QUEUED = "session.queued"
SESSION_CLAIMED = "session.claimed"
SESSION_MESSAGE = "session.message"
A2A_TASK_OPENED = "a2a.task.opened"

CANCEL_REQUESTED = "cancel.requested"

TASK_CREATED = "task.created"
TASK_STATUS = "task.status"

WORKFLOW_STEP_STARTED = "workflow.step.started"
WORKFLOW_STEP_FINISHED = "workflow.step.finished"
WORKFLOW_STEP_RETRY = "workflow.step.retry"
WORKFLOW_BRANCH = "workflow.branch"
WORKFLOW_JOIN = "workflow.join"

NODE_ENTER = "workflow.node.enter"
NODE_EXIT = "workflow.node.exit"

PLAN_CREATED = "plan.created"
TASK_DELEGATED = "task.delegated"
HANDOFF = "handoff"
ROUTE_DECIDED = "route.decided"
MODEL_CALL = "model.call"
MODEL_DELTA = "model.delta"
MODEL_RETRY = "model.retry"
AGENT_MESSAGE = "agent.message"
TOOL_CALL = "tool.call"
TOOL_RESULT = "tool.result"
TOOL_INTERRUPTED = "tool.interrupted"
GUARDRAIL_DECISION = "guardrail.decision"
BUDGET_EXCEEDED = "budget.exceeded"

FACT_WRITTEN = "fact.written"
DECISION_RECORDED = "decision.recorded"
ARTIFACT_STORED = "artifact.stored"
ARTIFACT_LINKED = "artifact.linked"
BLACKBOARD_DENIED = "blackboard.denied"
CONTEXT_ASSEMBLED = "context.assembled"
WORKSPACE_OPENED = "workspace.opened"
WORKSPACE_SNAPSHOT = "workspace.snapshot"
WORKSPACE_TASK_OPENED = "workspace.task.opened"
WORKSPACE_MERGED = "workspace.merged"
WORKSPACE_MERGE_CONFLICT = "workspace.merge.conflict"
WORKSPACE_TASK_DISCARDED = "workspace.task.discarded"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_ANSWERED = "approval.answered"
APPROVAL_APPLIED = "approval.applied"

SESSION_FINAL = frozenset({SESSION_COMPLETED, SESSION_FAILED, SESSION_CANCELLED})

DESCRIPTIONS: dict[str, str] = {
    SESSION_CREATED: "a session was created with its goal and the agent versions it runs with",
    SESSION_STARTED: "a process started running the session (payload: runId)",
    SESSION_RESUMED: "a process resumed the session from its checkpoint",
    SESSION_COMPLETED: "the session finished; payload holds the final answer and usage",
    SESSION_FAILED: "the session ended in failure; payload holds the reason",
    SESSION_CANCELLED: "the session was cancelled",
    SESSION_QUEUED: "the session waits for a worker to run it",
    SESSION_CLAIMED: "a worker took the session's lease and runs it (payload: workerId)",
    SESSION_MESSAGE: "a user sent a follow-up message; agents see it in their context",
    A2A_TASK_OPENED: "an A2A client opened the session as a task (payload: contextId)",
    CANCEL_REQUESTED: "someone asked to cancel the session or one of its tasks (reason)",
    TASK_CREATED: "a task joined the tree (goal, parent, assigned agent)",
    TASK_STATUS: "a task changed status (from, to, reason)",
    NODE_ENTER: "the run loop entered a node (an agent turn, a plan, a review ...)",
    NODE_EXIT: "the run loop finished a node; its result is checkpointed with this event",
    PLAN_CREATED: "the planner's plan was validated and turned into tasks",
    ROUTE_DECIDED: "a task was routed to an agent, with the reason",
    TASK_DELEGATED: "an agent delegated a sub-task (child task, goal, role, agent, budget)",
    HANDOFF: "an agent passed its task to another agent, with a note",
    MODEL_CALL: "a model call finished (agent, model, token usage, duration)",
    MODEL_DELTA: "streamed model text, published while the call runs (not a result)",
    MODEL_RETRY: "a model call failed in a way a retry may fix; the next attempt is due",
    AGENT_MESSAGE: "an agent's text for its task (its answer, or what it says before tools)",
    TOOL_CALL: "an agent asked to call a tool (tool, callId, arguments)",
    TOOL_RESULT: "a tool call finished (ok or an error the model was shown, duration)",
    TOOL_INTERRUPTED: "a crash interrupted a tool call with side effects; it was not re-run",
    GUARDRAIL_DECISION: "the guardrails allowed, asked about or denied a tool call, and why",
    BUDGET_EXCEEDED: "a session or task budget (tokens, time) was spent; the task failed",
    FACT_WRITTEN: "a fact got a new version (scope, key, version, expiresAt); the value is in "
    "the blackboard's history under this event's id",
    DECISION_RECORDED: "a decision was recorded (scope, key, version, decision, restsOn)",
    ARTIFACT_STORED: "an artifact was stored (artifactId, name, type, sha256, size, scope)",
    ARTIFACT_LINKED: "an artifact was linked to a task (artifactId, taskId)",
    BLACKBOARD_DENIED: "an agent tried to read or write the blackboard beyond its memory "
    "scope (action, scope, memoryScope, what); nothing was read or written",
    CONTEXT_ASSEMBLED: "what an agent was given before a model call: its task, its parent, and "
    "the fact keys and versions, artifact ids and messages it saw",
    APPROVAL_REQUESTED: "a tool call needs a person's answer (what, agent, risk, reasons, "
    "deadline); its task is blocked",
    APPROVAL_ANSWERED: "a person allowed or denied it, or the deadline passed (a deny)",
    APPROVAL_APPLIED: "the session took the answer in; the task runs again",
    WORKSPACE_OPENED: "the session's workspace: a worktree on its own branch, or a directory "
    "snapshotted in place (path, branch, notes about the user's uncommitted changes)",
    WORKSPACE_SNAPSHOT: "the workspace was snapshotted before or after writing tool calls "
    "(number, commit, label, files changed)",
    WORKSPACE_TASK_OPENED: "a task whose agent writes got a worktree of its own, branched from "
    "its parent's files as they were (path, branch, parentTaskId)",
    WORKSPACE_MERGED: "a finished task's worktree was merged into its parent's files and "
    "removed (into, files, snapshot, taskCommit)",
    WORKSPACE_MERGE_CONFLICT: "a finished task's change conflicts with its parent's files (or "
    "could not be merged): nothing was merged and the parent task is blocked (into, files, "
    "reason, artifactId, branch, worktree kept)",
    WORKSPACE_TASK_DISCARDED: "a failed task's worktree was removed unmerged; its change is "
    "kept as an artifact (artifactId, when it changed anything)",
    WORKFLOW_STEP_STARTED: "a declared workflow's step started (node, kind, attempt, task)",
    WORKFLOW_STEP_FINISHED: "a workflow step finished (status, next node)",
    WORKFLOW_STEP_RETRY: "a failed workflow step will be tried again after a backoff",
    WORKFLOW_BRANCH: "a condition chose the next node (expression, value, next)",
    WORKFLOW_JOIN: "a fan-out's branches joined (all or fail_fast, outcome)",
}
