"""Fixtures that build real things: a SQLite file in a temporary KEEL_HOME, a runtime on it,
and a team of agents on scripted models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from keel import Keel


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "keel-home"


@pytest.fixture
async def keel(home: Path) -> AsyncIterator[Keel]:
    runtime = await Keel.open(home)
    try:
        yield runtime
    finally:
        await runtime.close()


def agent(name: str, role: str, model: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "role": role, "model": model or f"scripted:{role}", **extra}


@pytest.fixture
def team() -> list[dict[str, Any]]:
    return [
        agent("planner", "planner"),
        agent("builder", "worker"),
        agent("tester", "worker"),
        agent("reviewer", "reviewer"),
    ]
