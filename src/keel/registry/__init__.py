"""Registries: agent definitions, sessions, and the task tree."""

from __future__ import annotations

from keel.registry.agents import AgentFolderError, AgentRegistry, load_folder
from keel.registry.sessions import SessionRegistry
from keel.registry.tasks import TaskNode, TaskRegistry, build_tree

__all__ = [
    "AgentFolderError",
    "AgentRegistry",
    "SessionRegistry",
    "TaskNode",
    "TaskRegistry",
    "build_tree",
    "load_folder",
]
