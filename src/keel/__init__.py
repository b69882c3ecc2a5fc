"""Keel: a durable multi-agent runtime."""

from __future__ import annotations

from keel.errors import KeelError
from keel.orchestrator import FunctionFlow, Keel
from keel.types import AgentDefinition, Artifact, Budget, Permission, Session, Task, TraceEvent

__all__ = [
    "AgentDefinition",
    "Artifact",
    "Budget",
    "FunctionFlow",
    "Keel",
    "KeelError",
    "Permission",
    "Session",
    "Task",
    "TraceEvent",
]
__version__ = "0.1.0"
