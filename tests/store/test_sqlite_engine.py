"""What only the SQLite engine does: a WAL file in KEEL_HOME, shared with other processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from keel.errors import StoreError
from keel.store import SqliteEngine, open_engine
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


async def test_an_unwritable_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="KEEL_HOME"):
        SqliteEngine(blocker / "sub" / "keel.db")


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


async def test_opening_waits_for_a_reader_that_holds_the_file_for_a_moment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keel.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE t (v INTEGER)")
    setup.execute("BEGIN")
    setup.execute("SELECT * FROM t").fetchall()  # a shared lock in rollback-journal mode
    release = asyncio.get_running_loop().call_later(0.3, setup.execute, "COMMIT")
    engine = await asyncio.to_thread(SqliteEngine, path)
    release.cancel()
    setup.close()
    mode = await engine.write(lambda tx: tx.fetchone("PRAGMA journal_mode"))
    await engine.close()
    assert mode == ("wal",)
