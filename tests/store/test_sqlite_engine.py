from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from keel.errors import MigrationError, StoreError
from keel.store import SqliteEngine, Tx, migrate, open_engine
from keel.store.migrations import available


async def test_opening_a_store_creates_a_wal_database_with_every_migration(tmp_path: Path) -> None:
    engine = await open_engine(f"sqlite:///{tmp_path / 'data' / 'keel.db'}")
    try:
        mode = await engine.write(lambda tx: tx.fetchone("PRAGMA journal_mode"))
        sync = await engine.write(lambda tx: tx.fetchone("PRAGMA synchronous"))
        versions = await engine.read(lambda tx: tx.fetchall("SELECT version FROM keel_schema"))
    finally:
        await engine.close()
    assert mode == ("wal",)
    assert sync == (2,)  # FULL
    assert [v for (v,) in versions] == [m.version for m in available()]


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    for _ in range(2):
        engine = await open_engine(url)
        rows = await engine.read(lambda tx: tx.fetchall("SELECT version FROM keel_schema"))
        await engine.close()
    assert len(rows) == len(available())


async def test_a_database_newer_than_this_keel_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    engine = SqliteEngine(path)
    await migrate(engine)
    await engine.write(
        lambda tx: tx.execute(
            "INSERT INTO keel_schema (version, name, applied_at) VALUES (9999, 'future', 0)"
        )
    )
    await engine.close()
    with pytest.raises(MigrationError, match="schema version 9999"):
        await open_engine(f"sqlite:///{path}")


async def test_an_unwritable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="KEEL_HOME"):
        SqliteEngine(blocker / "sub" / "keel.db")


async def test_a_failing_write_rolls_back_everything_it_did(tmp_path: Path) -> None:
    engine = SqliteEngine(tmp_path / "keel.db")
    await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))

    def half_then_fail(tx: Tx) -> None:
        tx.execute("INSERT INTO t VALUES (1)")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await engine.write(half_then_fail)
    rows = await engine.read(lambda tx: tx.fetchall("SELECT v FROM t"))
    await engine.close()
    assert rows == []


async def test_concurrent_writes_commit_together_and_a_failing_one_rolls_back_alone(
    tmp_path: Path,
) -> None:
    engine = SqliteEngine(tmp_path / "keel.db")
    await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))

    def insert(value: int) -> object:
        def work(tx: Tx) -> int:
            tx.execute("INSERT INTO t VALUES (?)", (value,))
            if value == 13:
                raise ValueError("unlucky")
            return value

        return work

    results = await asyncio.gather(
        *(engine.write(insert(v)) for v in range(40)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    rows = await engine.read(lambda tx: tx.fetchall("SELECT v FROM t ORDER BY v"))
    await engine.close()
    assert isinstance(results[13], ValueError)
    assert [r for i, r in enumerate(results) if i != 13] == [v for v in range(40) if v != 13]
    assert [v for (v,) in rows] == [v for v in range(40) if v != 13]


async def test_a_write_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    engine = SqliteEngine(path)
    await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    pending = asyncio.ensure_future(engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (1)")))
    await asyncio.sleep(0.2)
    assert not pending.done()
    other.execute("COMMIT")
    await asyncio.wait_for(pending, 5)
    rows = await engine.read(lambda tx: tx.fetchall("SELECT v FROM t"))
    other.close()
    await engine.close()
    assert rows == [(1,)]


async def test_an_unknown_database_url_is_a_clear_error() -> None:
    from keel.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported database URL scheme 'mysql'"):
        await open_engine("mysql://localhost/keel")
