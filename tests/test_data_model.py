from __future__ import annotations

import pytest

from keel.errors import ValidationFailed
from keel.types import AgentDefinition, Permission, Task, TaskStatus, TraceEvent, parse_model


def test_json_uses_the_seed_camel_case_names_and_python_uses_snake_case() -> None:
    task = Task(id="t_1", session_id="s_1", parent_id="t_0", assigned_agent="a", goal="g")
    data = task.to_json()
    assert data["sessionId"] == "s_1"
    assert data["parentId"] == "t_0"
    assert data["assignedAgent"] == "a"
    assert "session_id" not in data
    again = Task.model_validate(data)
    assert again.parent_id == "t_0"
    assert again.status is TaskStatus.PENDING


def test_an_agent_definition_accepts_camel_case_from_files() -> None:
    definition = AgentDefinition.model_validate(
        {"name": "coder", "role": "worker", "model": "scripted:worker", "memoryScope": "project"}
    )
    assert definition.memory_scope.value == "project"
    assert definition.id == "coder"


def test_validation_errors_name_every_bad_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_model(
            AgentDefinition,
            {
                "name": "ok",
                "role": "worker",
                "model": "scripted:worker",
                "permissions": [{"level": "L7", "scope": "file:read"}],
                "memoryScope": "everywhere",
            },
            "agent 'ok'",
        )
    fields = [field for field, _ in caught.value.problems]
    assert fields == ["permissions[0].level", "memoryScope"]
    assert "agent 'ok'" in str(caught.value)
    assert "permissions[0].level" in str(caught.value)


@pytest.mark.parametrize("scope", ["file:read", "shell:exec", "network:external", "git:push"])
def test_well_formed_scopes_are_accepted(scope: str) -> None:
    assert Permission.model_validate({"level": "L3", "scope": scope}).scope == scope


@pytest.mark.parametrize("scope", ["file", "File:Read", "file read", ":read", "file:"])
def test_malformed_scopes_are_refused_with_the_expected_shape(scope: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_model(Permission, {"level": "L1", "scope": scope}, "permission")
    assert "resource:action" in str(caught.value)


def test_unknown_fields_are_errors_not_silently_dropped() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_model(
            AgentDefinition,
            {"name": "a", "role": "r", "model": "scripted:worker", "tolls": ["x"]},
            "agent",
        )
    assert caught.value.problems[0][0] == "tolls"


def test_a_trace_event_serialises_with_its_sequence_number() -> None:
    event = TraceEvent.model_validate(
        {
            "id": "s_1:3",
            "seq": 3,
            "runId": "r_1",
            "sessionId": "s_1",
            "actor": "keel",
            "type": "task.status",
            "payload": {"from": "pending", "to": "running"},
            "timestamp": "2026-11-26T07:00:00Z",
        }
    )
    assert event.to_json()["runId"] == "r_1"
