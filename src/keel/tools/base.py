"""What a tool is: a name, a JSON Schema for its arguments, the permission scopes it
needs, and an async `run`. Tools raise `ToolError` for anything the model should be told
(a missing file, a bad argument); the executor turns it into the call's result.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from keel.errors import KeelError
from keel.models.base import ToolSpec
from keel.types import JsonObject, describe_validation_error


class ToolError(KeelError):
    """A tool call failed in a way the model can act on; the message is its result."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Where and for whom a tool call runs."""

    workspace: Path
    session_id: str
    task_id: str
    agent: str
    network: bool = False
    """Whether the agent is granted `network:external`: its commands may reach the network."""


class Tool(ABC):
    name: str
    description: str
    parameters: JsonObject
    scopes: tuple[str, ...] = ()
    read_only: bool = False
    """A read-only call may run concurrently with other read-only calls of the same turn."""
    idempotent: bool = False
    """Safe to run again when a crash interrupted it; otherwise a resumed task blocks."""

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: JsonObject) -> JsonObject:
        """Check `arguments` before the call runs; raise `ToolError` naming each bad field."""
        return arguments

    @abstractmethod
    async def run(self, arguments: JsonObject, context: ToolContext) -> str: ...


A = TypeVar("A", bound=BaseModel)


@functools.cache
def _schema(model: type[BaseModel]) -> JsonObject:
    """A tool's argument schema, built once per model (tools are made per session)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


class TypedTool(Tool, Generic[A]):
    """A tool whose arguments are a Pydantic model: the schema and the checks come from it."""

    arguments_model: ClassVar[type[BaseModel]]

    def __init__(self) -> None:
        self.parameters = _schema(self.arguments_model)

    def validate(self, arguments: JsonObject) -> JsonObject:
        try:
            parsed = self.arguments_model.model_validate(arguments)
        except ValidationError as error:
            problems = "; ".join(f"'{f}': {m}" for f, m in describe_validation_error(error))
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        return parsed.model_dump()

    async def run(self, arguments: JsonObject, context: ToolContext) -> str:
        return await self.call(self.arguments_model.model_validate(arguments), context)  # type: ignore[arg-type]

    @abstractmethod
    async def call(self, arguments: A, context: ToolContext) -> str: ...
