"""Each kind of event reads as one line of words in `keel run`, `keel watch` and `keel
replay`, never as its raw payload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keel.cli.view import describe, event_line
from keel.events import kinds
from keel.types import JsonObject, TraceEvent


def event(type: str, payload: JsonObject, actor: str = "keel") -> TraceEvent:
    return TraceEvent(
        id="e_1",
        seq=7,
        run_id="r_1",
        session_id="s_1",
        task_id="t_2",
        actor=actor,
        type=type,
        payload=payload,
        timestamp=datetime(2025, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("kind", sorted(kinds.DESCRIPTIONS))
def test_no_kind_of_event_is_shown_as_its_raw_payload(kind: str) -> None:
    assert "unexpected" not in describe(event(kind, {"unexpected": "field"}))


def test_a_task_worktree_opened_names_its_path_and_parent() -> None:
    payload = {"path": "/w/s_1.t_2", "branch": "keel/s_1.t_2", "parentTaskId": "t_1"}
    line = describe(event(kinds.WORKSPACE_TASK_OPENED, payload))
    assert line == "/w/s_1.t_2, from task t_1's files"


def test_a_merge_names_the_parent_the_files_and_the_snapshot() -> None:
    payload = {"into": "t_1", "files": ["a.py", "b.py"], "taskCommit": "abc", "snapshot": 3}
    assert (
        describe(event(kinds.WORKSPACE_MERGED, payload)) == "into task t_1: a.py, b.py (snapshot 3)"
    )
    empty = {"into": "t_1", "files": [], "taskCommit": "abc"}
    assert describe(event(kinds.WORKSPACE_MERGED, empty)) == "into task t_1: no change"


def test_a_merge_conflict_says_where_the_work_and_the_conflict_are_kept() -> None:
    payload = {
        "into": "t_1",
        "files": ["a.py"],
        "taskCommit": "abc",
        "branch": "keel/s_1.t_2",
        "worktree": "/w/s_1.t_2",
        "artifactId": "a_9",
        "reason": "the change of task t_2 conflicts with the session's files in a.py; ...",
    }
    line = describe(event(kinds.WORKSPACE_MERGE_CONFLICT, payload))
    assert line == "with task t_1 in a.py; kept on keel/s_1.t_2, the conflict as a_9"
    failed = {"into": "t_1", "branch": "keel/s_1.t_2", "reason": "git said no"}
    line = describe(event(kinds.WORKSPACE_MERGE_CONFLICT, failed))
    assert line == "not merged into task t_1: git said no"
    assert event_line(event(kinds.WORKSPACE_MERGE_CONFLICT, failed)).spans[2].style == "red"


def test_a_discarded_worktree_says_where_its_change_went() -> None:
    payload = {"path": "/w/s_1.t_2", "branch": "keel/s_1.t_2", "artifactId": "a_3"}
    line = describe(event(kinds.WORKSPACE_TASK_DISCARDED, payload))
    assert line == "keel/s_1.t_2 removed unmerged; its change is a_3"
    unchanged = {"path": "/w/s_1.t_2", "branch": "keel/s_1.t_2"}
    line = describe(event(kinds.WORKSPACE_TASK_DISCARDED, unchanged))
    assert line == "keel/s_1.t_2 removed unmerged; no change"


def test_queue_claim_message_and_a2a_events_read_as_words() -> None:
    assert describe(event(kinds.SESSION_QUEUED, {})) == "waiting for a worker"
    claimed = describe(event(kinds.SESSION_CLAIMED, {"workerId": "w_1", "claim": 2}))
    assert claimed == "worker w_1 runs it (claim 2)"
    message = event(kinds.SESSION_MESSAGE, {"text": "also  fix\nb", "number": 1}, actor="ann")
    assert describe(message) == "#1 from ann: also fix b"
    opened = event(kinds.A2A_TASK_OPENED, {"contextId": "c_1", "messageId": "m_1"}, actor="bo")
    assert describe(opened) == "A2A task of bo, context c_1"
