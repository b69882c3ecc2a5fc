"""Where a team session's tasks work, and the `merge` node that brings their changes back.

On a session worktree (a git repository), a task whose agent can change files works in a
worktree of its own, opened at its first tool batch from its parent's files as they are
then (the session's, or the delegating task's); read-only tasks work in their parent's.
When the task is done, a `merge:<task>:<parent>` node merges its worktree back into its
parent's; the node's result records the merge, and a merge a crash cut short is found
again rather than repeated. A conflict is never resolved by overwriting: nothing is
merged, the conflict is kept as an artifact, and the parent (the root task, for a planned
task) is blocked, so the session ends failed and says why. A failed task's worktree is
removed, its change kept as an artifact.

The node id and the keys of the results here are part of the checkpoint format: a resumed
session replays them from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from keel.blackboard import Actor
from keel.events import kinds
from keel.orchestrator.context import Blackboard
from keel.orchestrator.delegation import answer_parent
from keel.orchestrator.team_state import TeamState
from keel.orchestrator.unit import Node, Unit
from keel.registry.tasks import TaskRegistry
from keel.store import Tx
from keel.tools import Tool
from keel.tools.blackboard import BLACKBOARD_TOOL_NAMES
from keel.tools.orchestration import ORCHESTRATION_TOOLS
from keel.types import ArtifactType, JsonObject, MemoryScope, TaskStatus
from keel.workspace.errors import WorkspaceError
from keel.workspace.model import Workspace, WorkspaceKind
from keel.workspace.snapshots import final_patch
from keel.workspace.worktrees import WorkspaceManager

RECORD_TOOLS = ORCHESTRATION_TOOLS | BLACKBOARD_TOOL_NAMES
"""Tools that change Keel's records, not files: an agent with only these does not write."""


def writes(tools: Mapping[str, Tool]) -> bool:
    """Whether an agent with these tools can change files: it has a tool that is not
    read-only, other than the orchestration and blackboard tools (they change Keel's
    records only)."""
    return any(not tool.read_only and name not in RECORD_TOOLS for name, tool in tools.items())


def merge_nodes(state: TeamState, busy: set[str]) -> list[Node]:
    """The merges that may start: one per task whose worktree waits to be merged."""
    return [
        Node(f"merge:{t}:{state.parents.get(t, state.root_task_id)}", "merge", t)
        for t in state.merging
        if t not in busy
    ]


def note_opened(
    unit: Unit, state: TeamState, task_id: str, workspace: Workspace | None
) -> JsonObject:
    """The result's record of a worktree the task opened in this node (empty if none)."""
    if workspace is None or workspace.task_id != task_id or task_id in state.worktrees:
        return {}
    opened: JsonObject = {"path": str(workspace.root), "branch": workspace.branch}
    parent_id = state.parents.get(task_id, state.root_task_id)
    unit.emit(kinds.WORKSPACE_TASK_OPENED, {**opened, "parentTaskId": parent_id}, task_id=task_id)
    return {"worktree": opened}


def reduce_opened(state: TeamState, task_id: str, result: JsonObject) -> TeamState:
    """Remember the worktree a node's result says the task opened, if any."""
    if "worktree" not in result:
        return state
    worktrees = {**state.worktrees, task_id: result["worktree"]["path"]}
    return state.model_copy(update={"worktrees": worktrees})


def reduce_merge(state: TeamState, task_id: str, result: JsonObject, elapsed: float) -> TeamState:
    """The task is finished: merged, it answers as any task does; not merged, its parent is
    blocked and told why."""
    merge = result["merge"]
    text = state.merging.get(task_id, "")
    update: dict[str, object] = {
        "merging": {t: answer for t, answer in state.merging.items() if t != task_id},
        "finished": [*state.finished, task_id],
        "elapsed_ms": state.elapsed_ms + elapsed,
    }
    if merge["merged"]:
        update["outputs"] = {**state.outputs, task_id: text}
        return answer_parent(state.model_copy(update=update), task_id, text)
    into, reason = str(merge["into"]), str(merge["reason"])
    earlier = state.blocked.get(into)
    update["blocked"] = {**state.blocked, into: f"{earlier}; {reason}" if earlier else reason}
    return answer_parent(state.model_copy(update=update), task_id, f"error: {reason}")


class TaskWorkspaces:
    """The worktrees of a session's tasks: opened, merged back, or discarded."""

    def __init__(
        self,
        session_id: str,
        session_workspace: Workspace | None,
        manager: WorkspaceManager | None,
        blackboard: Blackboard | None,
    ) -> None:
        self.session_id = session_id
        self.session_workspace = session_workspace
        self.manager = manager
        self.blackboard = blackboard
        self._opened: dict[str, Workspace] = {}
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """Whether writing tasks get worktrees of their own: on a session worktree, with a
        manager to make them (a plain directory has no branches to merge)."""
        return (
            self.manager is not None
            and self.session_workspace is not None
            and self.session_workspace.kind is WorkspaceKind.WORKTREE
        )

    async def of(self, state: TeamState, task_id: str, *, writes: bool = False) -> Workspace | None:
        """Where a task works: its own worktree (opened if `writes`: its agent writes and
        this is its tool batch), else its parent's workspace, up to the session's."""
        if not self.enabled or task_id == state.root_task_id:
            return self.session_workspace
        parent = await self.of(state, state.parents.get(task_id, state.root_task_id))
        if task_id not in state.worktrees and not writes:
            return parent
        assert parent is not None
        assert self.manager is not None
        async with self._lock:
            if task_id not in self._opened:
                # The same worktree after a crash: its path and branch are the task's id.
                opened = await self.manager.open_task(parent, task_id)
                self._opened[task_id] = opened
        return self._opened[task_id]

    async def merge(self, state: TeamState, task_id: str, unit: Unit) -> JsonObject:
        """Merge a finished task's worktree into its parent's workspace, once. A conflict,
        or a merge that fails, merges nothing and blocks the parent."""
        assert self.manager is not None
        parent_id = state.parents.get(task_id, state.root_task_id)
        branch = f"keel/{self.session_id}.{task_id}"
        payload: JsonObject = {"into": parent_id}
        try:
            parent = await self.of(state, parent_id)
            assert parent is not None
            # Shielded: a cancellation must not leave the parent's files half merged.
            merged = await asyncio.shield(self.manager.merge_task(parent, task_id))
        except WorkspaceError as error:
            reason = f"the change of task {task_id} could not be merged back: {error}"
            return _block(unit, task_id, reason, {**payload, "branch": branch})
        payload.update(files=list(merged.files), taskCommit=merged.task_commit)
        if merged.snapshot is not None:
            payload["snapshot"] = merged.snapshot.number
        if merged.merged:
            self._opened.pop(task_id, None)
            unit.emit(kinds.WORKSPACE_MERGED, payload, task_id=task_id)
            return {"merge": {"merged": True, **payload}}
        payload.update(branch=branch, worktree=state.worktrees.get(task_id, ""))
        whose = "the session's" if parent_id == state.root_task_id else f"task {parent_id}'s"
        reason = (
            f"the change of task {task_id} conflicts with {whose} files in "
            f"{', '.join(merged.files)}; nothing was merged"
        )
        artifact = await self._keep(
            unit,
            parent_id,
            f"merge-conflict-{task_id}.patch",
            f"{reason}.\nThe task's work: branch {branch}, worktree {payload['worktree']}.\n"
            f"Both sides, from {whose} files to the merge with conflict markers:\n\n"
            f"{merged.conflict}",
        )
        if artifact is not None:
            payload["artifactId"] = artifact
            reason += f"; the conflict is artifact {artifact}"
        return _block(unit, task_id, f"{reason}; the task's work is on {branch}", payload)

    async def discard(self, unit: Unit, state: TeamState, task_id: str) -> None:
        """Remove a failed task's worktree, unmerged; its change is kept as an artifact."""
        if task_id not in state.worktrees and task_id not in self._opened:
            return
        assert self.manager is not None
        payload: JsonObject = {}
        try:
            child = self._opened.pop(task_id, None)
            if child is None:
                parent_id = state.parents.get(task_id, state.root_task_id)
                parent = await self.of(state, parent_id)
                assert parent is not None
                child = await self.manager.find_task(parent, task_id)
            if child is None:
                return
            payload.update(path=str(child.root), branch=child.branch)
            patch = await final_patch(child)
            if patch.strip():
                artifact = await self._keep(unit, task_id, f"task-{task_id}.patch", patch)
                if artifact is not None:
                    payload["artifactId"] = artifact
            await self.manager.discard_task(child)
        except WorkspaceError:
            return  # what is left goes with the session (`keel delete`, prune)
        unit.emit(kinds.WORKSPACE_TASK_DISCARDED, payload, task_id=task_id)

    async def _keep(self, unit: Unit, task_id: str, name: str, text: str) -> str | None:
        """Keep `text` as the session's artifact `name`, linked to the task, once (a node
        run again after a crash finds it); its id, or None without a blackboard."""
        if self.blackboard is None:
            return None
        store = self.blackboard.artifacts
        for found in await store.list(session_id=self.session_id):
            if found.name == name:
                return found.id
        actor = Actor("keel", self.session_id, unit.run_id, MemoryScope.SESSION, task_id=task_id)
        kept = await store.put(text.encode(), name=name, type=ArtifactType.CODE, actor=actor)
        return kept.id


def _block(unit: Unit, task_id: str, reason: str, payload: JsonObject) -> JsonObject:
    """Block the task the merge of `task_id` was for; return the merge node's result."""
    run_id, blocked = unit.run_id, str(payload["into"])

    def block(tx: Tx) -> None:
        if TaskRegistry.get_in(tx, blocked).status is TaskStatus.RUNNING:
            TaskRegistry.transition_in(tx, run_id, blocked, TaskStatus.BLOCKED, reason=reason)

    unit.do(block)
    unit.emit(kinds.WORKSPACE_MERGE_CONFLICT, {**payload, "reason": reason}, task_id=task_id)
    return {"merge": {"merged": False, **payload, "reason": reason}}
