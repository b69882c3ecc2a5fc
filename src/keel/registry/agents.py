"""The agent registry: validated agent definitions, versioned by content.

Definitions come from YAML files (one agent per file) or from Python. Registration is all
or nothing: if any definition is invalid, nothing is registered. Registering a definition
whose content changed makes a new version; an unchanged one keeps its version. A session
records the versions it ran with, so a resumed session runs the same agents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from keel.config_files import read_yaml
from keel.errors import AgentDefinitionError, DuplicateAgent, UnknownAgent
from keel.events import dump_json, now_us
from keel.models import check_model_string
from keel.store import Engine, Tx
from keel.tools import BUILTIN_TOOL_NAMES
from keel.types import AgentDefinition, describe_validation_error

AGENT_FILE_SUFFIXES = (".yaml", ".yml")


def digest(definition: AgentDefinition) -> str:
    content = definition.model_dump(mode="json", by_alias=True, exclude={"version"})
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_definition(
    definition: AgentDefinition, known_tools: Collection[str]
) -> list[tuple[str, str]]:
    """What the data model cannot know: the provider and the tools must exist."""
    problems: list[tuple[str, str]] = []
    model_problem = check_model_string(definition.model)
    if model_problem:
        problems.append(("model", model_problem))
    for index, tool in enumerate(definition.tools):
        if tool not in known_tools:
            known = ", ".join(sorted(known_tools)) or "none are registered"
            problems.append((f"tools[{index}]", f"unknown tool '{tool}' (known tools: {known})"))
    return problems


def parse_definition(data: Any, subject: str, known_tools: Collection[str]) -> AgentDefinition:
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        raise AgentDefinitionError(subject, [("(root)", f"expected a mapping, found {kind}")])
    try:
        definition = AgentDefinition.model_validate(data)
    except ValidationError as error:
        raise AgentDefinitionError(subject, describe_validation_error(error)) from None
    if definition.version is not None:
        raise AgentDefinitionError(
            subject, [("version", "is assigned by the registry; remove it from the definition")]
        )
    problems = check_definition(definition, known_tools)
    if problems:
        raise AgentDefinitionError(subject, problems)
    return definition


def load_file(path: Path, known_tools: Collection[str]) -> AgentDefinition:
    return parse_definition(read_yaml(path, AgentDefinitionError), str(path), known_tools)


class AgentFolderError(AgentDefinitionError):
    """One or more files of an agent folder are invalid; `errors` holds one per file."""

    def __init__(self, errors: Sequence[AgentDefinitionError]) -> None:
        self.errors = list(errors)
        problems = [
            (f"{error.subject}: {field}", message)
            for error in self.errors
            for field, message in error.problems
        ]
        super().__init__(
            f"{len(self.errors)} invalid agent file{'s' if len(self.errors) != 1 else ''}",
            problems,
        )

    def lines(self) -> list[str]:
        return [str(error) for error in self.errors]


def load_folder(
    folder: Path, known_tools: Collection[str] = BUILTIN_TOOL_NAMES
) -> list[AgentDefinition]:
    """Load every agent file in `folder`; raise one error naming every bad file."""
    if not folder.is_dir():
        raise AgentDefinitionError(str(folder), [("(folder)", "is not a directory")])
    files = sorted(p for p in folder.iterdir() if p.suffix in AGENT_FILE_SUFFIXES)
    if not files:
        raise AgentDefinitionError(
            str(folder), [("(folder)", "holds no agent files (*.yaml or *.yml)")]
        )
    definitions: list[AgentDefinition] = []
    errors: list[AgentDefinitionError] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            definition = load_file(path, known_tools)
        except AgentDefinitionError as error:
            errors.append(error)
            continue
        if definition.name in seen:
            errors.append(
                AgentDefinitionError(
                    str(path),
                    [
                        (
                            "name",
                            f"'{definition.name}' is already defined in {seen[definition.name]}",
                        )
                    ],
                )
            )
            continue
        seen[definition.name] = path
        definitions.append(definition)
    if errors:
        raise AgentFolderError(errors)
    return definitions


class AgentRegistry:
    def __init__(self, engine: Engine, known_tools: Collection[str] = BUILTIN_TOOL_NAMES) -> None:
        self._engine = engine
        self.known_tools = frozenset(known_tools)

    def load_folder(self, folder: Path) -> list[AgentDefinition]:
        return load_folder(folder, self.known_tools)

    def validate(self, definition: AgentDefinition | dict[str, Any]) -> AgentDefinition:
        """Validate a definition made in Python (a model or a camelCase mapping)."""
        data = (
            definition.model_dump(by_alias=True, exclude={"version"})
            if isinstance(definition, AgentDefinition)
            else definition
        )
        subject = f"agent '{data.get('name', '?')}'" if isinstance(data, dict) else "agent"
        return parse_definition(data, subject, self.known_tools)

    async def register(
        self, definitions: Iterable[AgentDefinition | dict[str, Any]]
    ) -> list[AgentDefinition]:
        """Validate and register `definitions` together; return them with their versions."""
        checked = [self.validate(definition) for definition in definitions]
        names = [definition.name for definition in checked]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DuplicateAgent(
                f"agent name{'s' if len(duplicates) > 1 else ''} defined twice: "
                + ", ".join(duplicates)
            )
        return await self._engine.write(lambda tx: [self._register_in(tx, d) for d in checked])

    @staticmethod
    def _register_in(tx: Tx, definition: AgentDefinition) -> AgentDefinition:
        tx.lock(f"agent:{definition.name}")
        fingerprint = digest(definition)
        row = tx.fetchone(
            "SELECT version, digest FROM agent_versions WHERE name = ? "
            "ORDER BY version DESC LIMIT 1",
            (definition.name,),
        )
        if row is not None and row[1] == fingerprint:
            return definition.model_copy(update={"version": int(row[0])})
        version = int(row[0]) + 1 if row is not None else 1
        tx.execute(
            "INSERT INTO agent_versions (name, version, digest, definition, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                definition.name,
                version,
                fingerprint,
                dump_json(definition.model_dump(mode="json", by_alias=True, exclude={"version"})),
                now_us(),
            ),
        )
        return definition.model_copy(update={"version": version})

    async def get(self, name: str, version: int | None = None) -> AgentDefinition:
        if version is None:
            sql = (
                "SELECT definition, version FROM agent_versions WHERE name = ? "
                "ORDER BY version DESC LIMIT 1"
            )
            params: tuple[object, ...] = (name,)
        else:
            sql = "SELECT definition, version FROM agent_versions WHERE name = ? AND version = ?"
            params = (name, version)
        row = await self._engine.read(lambda tx: tx.fetchone(sql, params))
        if row is None:
            which = f"version {version} of agent '{name}'" if version else f"agent '{name}'"
            raise UnknownAgent(f"{which} is not registered")
        return AgentDefinition.model_validate({**json.loads(row[0]), "version": row[1]})

    async def resolve(self, versions: dict[str, int]) -> list[AgentDefinition]:
        """The exact definitions a session recorded."""
        return [await self.get(name, version) for name, version in versions.items()]

    async def latest(self) -> list[AgentDefinition]:
        rows = await self._engine.read(
            lambda tx: tx.fetchall(
                "SELECT a.definition, a.version FROM agent_versions a WHERE a.version = "
                "(SELECT MAX(b.version) FROM agent_versions b WHERE b.name = a.name) "
                "ORDER BY a.name"
            )
        )
        return [AgentDefinition.model_validate({**json.loads(d), "version": v}) for d, v in rows]
