"""A project an agent can work on: the demo's git repository (its tests fail on a bug the
scripted coder knows), with a policy that runs commands unsandboxed on the host (tests do
not depend on bubblewrap) and, when asked for, asks a person before each command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keel.cli.demo import create_demo_repo

RUN_HERE = "sandbox: {backend: local, allowUnsandboxed: true}\n"
ASK_FOR_COMMANDS = "rules:\n  - {action: ask, tool: run_command, reason: the user watches}\n"


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    def make(*, ask: bool = False) -> Path:
        parent = tmp_path / "projects"
        parent.mkdir(exist_ok=True)
        repo = create_demo_repo(parent).resolve()
        policy = RUN_HERE + (ASK_FOR_COMMANDS if ask else "")
        (repo / "keel.policy.yaml").write_text(policy)
        return repo

    return make
