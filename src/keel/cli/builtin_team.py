"""The built-in team on scripted models: a planner, a coder, a tester, a reviewer."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from keel.registry import load_folder
from keel.types import AgentDefinition


def default_team() -> list[AgentDefinition]:
    """The agents in `keel/cli/team/*.yaml`, validated."""
    with resources.as_file(resources.files("keel.cli").joinpath("team")) as folder:
        return load_folder(Path(folder))
