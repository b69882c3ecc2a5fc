"""The engine contract, on every engine: transactions, concurrency, migrations, URLs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from keel import Keel
from keel.errors import ConfigError, MigrationError, ValidationFailed
from keel.store import Engine, Tx, open_engine
from keel.store.migrations import available


@pytest.fixture
async def store(engine_url: str) -> AsyncIterator[Engine]:
    engine = await open_engine(engine_url)
    await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))
    try:
        yield engine
    finally:
        await engine.close()


async def test_opening_a_store_applies_every_migration_once(engine_url: str) -> None:
    for _ in range(2):
        engine = await open_engine(engine_url)
        rows = await engine.read(lambda tx: tx.fetchall("SELECT version FROM keel_schema"))
        await engine.close()
    assert [v for (v,) in rows] == [m.version for m in available()]


async def test_a_database_newer_than_this_keel_is_refused_untouched(engine_url: str) -> None:
    engine = await open_engine(engine_url)
    await engine.write(
        lambda tx: tx.execute(
            "INSERT INTO keel_schema (version, name, applied_at) VALUES (9999, 'future', 0)"
        )
    )
    await engine.close()
    with pytest.raises(MigrationError, match="schema version 9999"):
        await open_engine(engine_url)


async def test_a_failing_write_rolls_back_everything_it_did(store: Engine) -> None:
    def half_then_fail(tx: Tx) -> None:
        tx.execute("INSERT INTO t VALUES (1)")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await store.write(half_then_fail)
    assert await store.read(lambda tx: tx.fetchall("SELECT v FROM t")) == []


async def test_concurrent_writes_all_commit_and_a_failing_one_rolls_back_alone(
    store: Engine,
) -> None:
    def insert(value: int) -> object:
        def work(tx: Tx) -> int:
            tx.execute("INSERT INTO t VALUES (?)", (value,))
            if value == 13:
                raise ValueError("unlucky")
            return value

        return work

    results = await asyncio.gather(
        *(store.write(insert(v)) for v in range(40)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    rows = await store.read(lambda tx: tx.fetchall("SELECT v FROM t ORDER BY v"))
    assert isinstance(results[13], ValueError)
    assert [r for i, r in enumerate(results) if i != 13] == [v for v in range(40) if v != 13]
    assert [v for (v,) in rows] == [v for v in range(40) if v != 13]


async def test_writes_that_lock_one_key_never_lose_an_update(store: Engine) -> None:
    await store.write(lambda tx: tx.execute("INSERT INTO t VALUES (0)"))

    def increment(tx: Tx) -> None:
        tx.lock("counter")
        row = tx.fetchone("SELECT v FROM t")
        assert row is not None
        tx.execute("UPDATE t SET v = ?", (row[0] + 1,))

    await asyncio.gather(*(store.write(increment) for _ in range(30)))
    assert await store.read(lambda tx: tx.fetchall("SELECT v FROM t")) == [(30,)]


async def test_a_batch_insert_writes_every_row(store: Engine) -> None:
    await store.write(lambda tx: tx.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)]))
    assert await store.read(lambda tx: tx.fetchone("SELECT COUNT(*), SUM(v) FROM t")) == (3, 6)


async def test_an_unknown_database_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unsupported database URL scheme 'mysql'"):
        await open_engine("mysql://localhost/keel")


async def test_a_postgresql_url_without_the_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "keel.store.postgres", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'keel\[postgres\]'"):
        await open_engine("postgresql://keel@localhost/keel")


SOLO = {"name": "a", "role": "worker", "model": "scripted:worker"}


async def test_a_value_the_database_cannot_hold_is_a_validation_error_and_writes_nothing(
    keel: Keel,
) -> None:
    # PostgreSQL text cannot hold NUL; SQLite can. Either way no half-written session.
    goal = "goal with a \x00 in it"
    if keel.engine.dialect == "postgresql":
        with pytest.raises(ValidationFailed, match="0x00"):
            await keel.create_session(goal, [SOLO])
        assert await keel.sessions.list() == []
    else:
        session = await keel.create_session(goal, [SOLO])
        assert (await keel.sessions.get(session.id)).goal == goal
