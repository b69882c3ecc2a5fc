"""What only the PostgreSQL engine does: many engines on one database, each store in its own
schema, conflicts re-run, lost connections replaced, failures that name the server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from keel.errors import ConfigError, StoreError  # noqa: E402
from keel.events import EventLog, NewEvent  # noqa: E402
from keel.store import Tx, open_engine  # noqa: E402
from keel.store.migrations import available  # noqa: E402


async def test_two_engines_appending_to_one_session_at_once_keep_its_log_gap_free(
    postgres_url: str,
) -> None:
    first, second = await open_engine(postgres_url), await open_engine(postgres_url)
    try:
        logs = [EventLog(first), EventLog(second)]
        batches = [[NewEvent("note", payload={"n": n})] * (1 + n % 3) for n in range(80)]
        await asyncio.gather(
            *(logs[n % 2].append("s_shared", "r", batch) for n, batch in enumerate(batches))
        )
        events = await logs[0].read("s_shared")
    finally:
        await first.close()
        await second.close()
    assert [e.seq for e in events] == list(range(1, sum(map(len, batches)) + 1))
    runs = [e.payload["n"] for e in events]
    assert [n for i, n in enumerate(runs) if i == 0 or runs[i - 1] != n] == sorted(
        set(runs), key=runs.index
    ), "each batch is contiguous"


async def test_engines_opening_a_new_schema_together_create_and_migrate_it_once(
    new_postgres_url: Callable[..., str],
) -> None:
    url = new_postgres_url(create=False)
    engines = await asyncio.gather(*(open_engine(url) for _ in range(4)))
    try:
        rows = await engines[0].read(
            lambda tx: tx.fetchall("SELECT version FROM keel_schema ORDER BY version")
        )
    finally:
        for engine in engines:
            await engine.close()
    assert [v for (v,) in rows] == [m.version for m in available()]


async def test_each_schema_is_a_store_of_its_own(new_postgres_url: Callable[..., str]) -> None:
    a, b = await open_engine(new_postgres_url()), await open_engine(new_postgres_url())
    try:
        await EventLog(a).append("s_same_id", "r", [NewEvent("a")] * 3)
        await EventLog(b).append("s_same_id", "r", [NewEvent("b")])
        seen_a = [e.type for e in await EventLog(a).read("s_same_id")]
        seen_b = [e.type for e in await EventLog(b).read("s_same_id")]
    finally:
        await a.close()
        await b.close()
    assert (seen_a, seen_b) == (["a", "a", "a"], ["b"])


async def test_reads_run_in_read_only_transactions(postgres_url: str) -> None:
    engine = await open_engine(postgres_url)
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await engine.read(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))
        assert await engine.read(lambda tx: tx.fetchone("SELECT 1")) == (1,)
    finally:
        await engine.close()


async def test_literal_percent_signs_and_question_marks_reach_the_server_unchanged(
    postgres_url: str,
) -> None:
    engine = await open_engine(postgres_url)
    try:
        row = await engine.read(lambda tx: tx.fetchone("SELECT '100%', 'why?', ? || '%'", ("x",)))
    finally:
        await engine.close()
    assert row == ("100%", "why?", "x%")


async def test_a_write_that_hits_a_serialisation_failure_is_run_again(postgres_url: str) -> None:
    engine = await open_engine(postgres_url)
    await engine.write(lambda tx: tx.execute("CREATE TABLE counter (v INTEGER)"))
    await engine.write(lambda tx: tx.execute("INSERT INTO counter VALUES (0)"))
    attempts: list[int] = []
    has_read, other_committed = threading.Event(), threading.Event()

    def read_then_increment(tx: Tx) -> None:
        attempts.append(len(attempts) + 1)
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = tx.fetchone("SELECT v FROM counter")
        assert row is not None
        if len(attempts) == 1:  # let another write change the row under this snapshot
            has_read.set()
            assert other_committed.wait(5)
        tx.execute("UPDATE counter SET v = ?", (row[0] + 1,))

    def add_ten(tx: Tx) -> None:
        assert has_read.wait(5)
        tx.execute("UPDATE counter SET v = v + 10")

    async def add_ten_then_tell() -> None:
        await engine.write(add_ten)
        other_committed.set()

    try:
        await asyncio.gather(engine.write(read_then_increment), add_ten_then_tell())
        assert await engine.read(lambda tx: tx.fetchone("SELECT v FROM counter")) == (11,)
    finally:
        await engine.close()
    assert attempts == [1, 2]


async def test_connections_the_server_dropped_are_replaced(
    postgres_url: str, postgres_admin: psycopg.Connection[Any]
) -> None:
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    engine = await open_engine(f"{postgres_url}&application_name={name}")
    await engine.write(lambda tx: tx.execute("CREATE TABLE t (v INTEGER)"))
    assert await engine.read(lambda tx: tx.fetchall("SELECT v FROM t")) == []
    find = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    pids = [pid for (pid,) in postgres_admin.execute(find, (name,)).fetchall()]
    assert len(pids) == 2  # one writer, one reader
    for pid in pids:  # and wait until it has gone
        postgres_admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    try:
        await engine.write(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
        assert await engine.read(lambda tx: tx.fetchall("SELECT v FROM t")) == [(1,)]
    finally:
        await engine.close()


async def test_size_is_the_size_of_the_schemas_tables(postgres_url: str) -> None:
    engine = await open_engine(postgres_url)
    try:
        empty = await asyncio.to_thread(engine.size_bytes)
        await EventLog(engine).append("s", "r", [NewEvent("x", payload={"pad": "." * 200})] * 500)
        grown = await asyncio.to_thread(engine.size_bytes)
    finally:
        await engine.close()
    assert 0 < empty < grown


async def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password() -> None:
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/keel") as raised:
        await open_engine("postgres://keel:s3cret@127.0.0.1:1/keel?connect_timeout=2")
    assert "s3cret" not in str(raised.value)
    assert "KEEL_DATABASE_URL" in str(raised.value)


async def test_a_missing_database_is_a_store_error_naming_it(postgres_dsn: str) -> None:
    url = urlunsplit(urlsplit(postgres_dsn)._replace(path="/keel_no_such_database"))
    with pytest.raises(StoreError, match='database "keel_no_such_database" does not exist'):
        await open_engine(url)


async def test_a_url_with_an_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="colour"):
        await open_engine("postgresql://keel@localhost/keel?colour=blue")
