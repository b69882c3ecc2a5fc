"""Fixtures that build real things: a SQLite file in a temporary KEEL_HOME or a fresh schema
in a real PostgreSQL database, a runtime on it, and a team of agents on scripted models.

Tests that take `engine_url` or `keel` run once on each engine. The PostgreSQL variant uses
the database at `KEEL_TEST_PG_DSN` (default below), gives each test a schema of its own and
drops it afterwards; it is skipped, with the reason, when that server cannot be reached.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel import Keel

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the PostgreSQL variants skip
    psycopg = None  # type: ignore[assignment]

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "keel-home"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[psycopg.Connection[Any]]:
    """A connection to the test database for creating and dropping schemas; skips the test,
    with the reason, when that database cannot be reached."""
    dsn = os.environ.get("KEEL_TEST_PG_DSN", DEFAULT_PG_DSN)
    if psycopg is None:
        pytest.skip("psycopg is not installed: pip install 'keel[postgres]'")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        shown = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", dsn)
        reason = str(error).splitlines()[0]
        pytest.skip(f"PostgreSQL at KEEL_TEST_PG_DSN={shown} is not reachable: {reason}")
    # An engine left open in a transaction would hold its locks: fail, do not hang.
    conn.execute("SET lock_timeout = '10s'")
    with conn:
        yield conn


@pytest.fixture(scope="session")
def postgres_dsn(postgres_admin: psycopg.Connection[Any]) -> str:
    """The test database's DSN (`KEEL_TEST_PG_DSN`), once it has answered."""
    return os.environ.get("KEEL_TEST_PG_DSN", DEFAULT_PG_DSN)


@pytest.fixture
def new_postgres_url(
    postgres_dsn: str, postgres_admin: psycopg.Connection[Any]
) -> Iterator[Callable[..., str]]:
    """Makes Keel URLs on schemas of this test's own (`create=False`: only the name, for the
    engine to create); every one is dropped when the test ends."""
    names: list[str] = []

    def make(*, create: bool = True) -> str:
        name = f"keel_test_{uuid.uuid4().hex[:12]}"
        names.append(name)
        if create:
            postgres_admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}schema={name}"

    yield make
    for name in names:
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
        postgres_admin.execute(drop)


@pytest.fixture
def postgres_url(new_postgres_url: Callable[..., str]) -> str:
    """A Keel URL on a schema of this test's own."""
    return new_postgres_url()


@pytest.fixture(params=["sqlite", "postgres"])
def engine_url(request: pytest.FixtureRequest, home: Path) -> str:
    """The store's URL, once per engine."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'keel.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def keel(home: Path, engine_url: str) -> AsyncIterator[Keel]:
    runtime = await Keel.open(home, database_url=engine_url)
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
