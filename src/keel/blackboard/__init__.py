"""The blackboard: shared facts, decisions and artifacts, with versions, time to live,
provenance, and per-agent memory scopes. The event log records the process; the
blackboard holds what the agents know and made."""

from __future__ import annotations

from keel.blackboard.artifacts import ArtifactStore, FileArtifactStore
from keel.blackboard.decisions import Decision, DecisionLog, RecordedDecision
from keel.blackboard.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    BlackboardError,
    FactConflict,
    FactKindMismatch,
    FactNotFound,
    InvalidFact,
    ScopeViolation,
)
from keel.blackboard.facts import Fact, FactKind, FactRef, FactStore
from keel.blackboard.scopes import (
    GLOBAL_SCOPE,
    Actor,
    ScopeLevel,
    project_scope,
    scope_level,
    session_scope,
)

__all__ = [
    "GLOBAL_SCOPE",
    "Actor",
    "ArtifactCorrupted",
    "ArtifactNotFound",
    "ArtifactStore",
    "BlackboardError",
    "Decision",
    "DecisionLog",
    "Fact",
    "FactConflict",
    "FactKind",
    "FactKindMismatch",
    "FactNotFound",
    "FactRef",
    "FactStore",
    "FileArtifactStore",
    "InvalidFact",
    "RecordedDecision",
    "ScopeLevel",
    "ScopeViolation",
    "project_scope",
    "scope_level",
    "session_scope",
]
