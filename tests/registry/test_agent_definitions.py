from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel import Keel
from keel.errors import AgentDefinitionError, DuplicateAgent, UnknownAgent
from keel.registry import AgentFolderError, load_folder

GOOD = """\
name: coder
role: worker
model: scripted:worker
instructions: Write the code.
permissions:
  - level: L2
    scope: file:write
memoryScope: session
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_a_folder_of_valid_files_loads_every_agent(tmp_path: Path) -> None:
    write(tmp_path, "coder.yaml", GOOD)
    write(tmp_path, "reviewer.yml", "name: rev\nrole: reviewer\nmodel: scripted:reviewer\n")
    write(tmp_path, "notes.txt", "not an agent")
    found = load_folder(tmp_path)
    assert [a.name for a in found] == ["coder", "rev"]
    assert found[0].permissions[0].scope == "file:write"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (GOOD.replace("level: L2", "level: L6"), "permissions[0].level", "'L0'"),
        (GOOD.replace("scope: file:write", "scope: write files"), "permissions[0].scope", "scope"),
        (GOOD.replace("scripted:worker", "gemini:pro"), "model", "unknown model provider 'gemini'"),
        (GOOD.replace("scripted:worker", "scripted:nope"), "model", "no script named 'nope'"),
        (GOOD + "tools: [teleport]\n", "tools[0]", "unknown tool 'teleport'"),
        (GOOD.replace("memoryScope: session", "memoryScope: team"), "memoryScope", "'none'"),
        (GOOD.replace("name: coder", "name: 9 lives"), "name", "pattern"),
        (GOOD + "colour: blue\n", "colour", "Extra inputs"),
        (GOOD.replace("role: worker\n", ""), "role", "Field required"),
        ("- just\n- a list\n", "(root)", "expected a mapping"),
        ("name: [unclosed\n", "line 2", "not valid YAML"),
        (GOOD + "version: 3\n", "version", "assigned by the registry"),
    ],
)
def test_a_bad_file_is_named_with_its_field(
    tmp_path: Path, text: str, field: str, words: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(AgentFolderError) as caught:
        load_folder(tmp_path)
    (error,) = caught.value.errors
    assert error.subject == str(path)
    assert any(f.startswith(field) and words in m for f, m in error.problems), error.problems


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace("L2", "L9"))
    write(tmp_path, "b.yaml", GOOD.replace("name: coder", "name: other") + "tools: [x]\n")
    write(tmp_path, "c.yaml", GOOD.replace("name: coder", "name: fine"))
    with pytest.raises(AgentFolderError) as caught:
        load_folder(tmp_path)
    assert [Path(e.subject).name for e in caught.value.errors] == ["a.yaml", "b.yaml"]


def test_two_files_with_one_name_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(AgentFolderError, match="already defined in"):
        load_folder(tmp_path)


def test_an_empty_or_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentDefinitionError, match="no agent files"):
        load_folder(tmp_path)
    with pytest.raises(AgentDefinitionError, match="not a directory"):
        load_folder(tmp_path / "missing")


async def test_registering_an_unchanged_definition_keeps_its_version(keel: Keel) -> None:
    agent = {"name": "coder", "role": "worker", "model": "scripted:worker"}
    (first,) = await keel.agents.register([agent])
    (again,) = await keel.agents.register([agent])
    assert first.version == again.version == 1


async def test_a_changed_definition_becomes_a_new_version(keel: Keel) -> None:
    agent: dict[str, Any] = {"name": "coder", "role": "worker", "model": "scripted:worker"}
    await keel.agents.register([agent])
    (changed,) = await keel.agents.register([{**agent, "instructions": "Be brief."}])
    assert changed.version == 2
    assert (await keel.agents.get("coder", 1)).instructions == ""
    assert (await keel.agents.get("coder")).instructions == "Be brief."
    assert [a.version for a in await keel.agents.latest()] == [2]


async def test_registration_is_all_or_nothing(keel: Keel) -> None:
    good = {"name": "coder", "role": "worker", "model": "scripted:worker"}
    bad = {"name": "broken", "role": "worker", "model": "nowhere:model"}
    with pytest.raises(AgentDefinitionError, match="broken"):
        await keel.agents.register([good, bad])
    with pytest.raises(DuplicateAgent, match="coder"):
        await keel.agents.register([good, good])
    assert await keel.agents.latest() == []
    with pytest.raises(UnknownAgent, match="'coder' is not registered"):
        await keel.agents.get("coder")


async def test_a_session_records_the_agent_versions_it_runs_with(
    keel: Keel, team: list[dict[str, Any]]
) -> None:
    first = await keel.create_session("Do a thing", team)
    team[1] = {**team[1], "instructions": "Changed."}
    second = await keel.create_session("Do another thing", team)
    assert first.agent_versions["builder"] == 1
    assert second.agent_versions["builder"] == 2
    assert second.agent_versions["planner"] == 1
    assert (await keel.sessions.get(first.id)).agent_versions == first.agent_versions
