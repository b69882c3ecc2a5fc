"""The PostgreSQL engine: the scale-out store that every Keel node of a deployment shares.

URL: `postgresql://user:password@host:port/dbname?schema=name` (`postgres://` too). Any
libpq parameter may be added to the query (`sslmode`, `connect_timeout`, `options`, ...).
`schema` is Keel's own and is stripped before connecting: the store's tables live in that
schema, which is created when it is missing. Without it they go wherever the server's
`search_path` puts them (usually `public`).

Threads and connections. Work functions are synchronous and so is the driver, so writes
and reads each get a pool of up to `pool_size` threads and as many connections. A job
takes the most recently used idle connection, or opens one, and gives it back before its
result is delivered: a caller that never overlaps its writes holds one writer connection.
A job is one hand-off: the work goes to a pool thread, its result comes back to the loop
with `call_soon_threadsafe`. The loop never waits on the database.

* **Writes** run each work function in one READ COMMITTED transaction. Writes run side by
  side on separate connections; PostgreSQL's own locks order them. READ COMMITTED is
  chosen so that a statement sees everything committed before it started: a transaction
  that waits in `tx.lock(key)` reads the latest state once it holds the lock (under
  snapshot isolation it would read the snapshot taken before it waited). A
  read-modify-write of shared state must therefore lock a key first, as
  `EventLog.append_in` does for each session's sequence.
* **Reads** run in a REPEATABLE READ READ ONLY transaction on their own connections: one
  consistent snapshot for the whole work function, and no way to write.

Signals. `Tx.notify` and `subscribe` are PostgreSQL's LISTEN/NOTIFY, over one more
connection per engine (see `postgres_signals.py`); a write's signals are sent after it
commits.

Failures. A deadlock or serialisation failure rolls back and re-runs the work function
(it is a pure function of its `Tx`) a few times. A connection that is lost before the
commit was sent is replaced and the work re-run; one lost during the commit is a
`StoreError`, since the outcome is unknown. A server that cannot be reached is a
`StoreError` naming the host and database. Any other database error reaches the caller
as the driver raised it, after the rollback.

This module never decides what to store or how; the SQL belongs to the modules above.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import IsolationLevel, errors, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from keel.errors import ConfigError, StoreError, ValidationFailed
from keel.store.engine import Engine, Params, Row, Subscriber, T, Work
from keel.store.postgres_signals import Signals

Connection = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]

_ATTEMPTS = 5
_BACKOFF_S = 0.01
_CONNECT_TIMEOUT_S = 10
_APPLICATION_NAME = "keel"
_SIGNALS_USER_TIMEOUT_MS = 30_000
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected)
# Advisory locks are per database: the schema in the key keeps stores apart.
_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended(coalesce(current_schema(), '') || ':' || %s, 0))"
)
_TABLES_SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
)


@functools.lru_cache(maxsize=4096)
def _pyformat(statement: str) -> str:
    """`?` placeholders become psycopg's `%s` and a literal `%` becomes `%%`; a `?` inside
    a quoted string or identifier stays as it is."""
    out: list[str] = []
    quote = ""
    for char in statement:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


class _PostgresTx:
    __slots__ = ("_cursor", "signals")

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor
        self.signals: dict[tuple[str, str], None] = {}

    def execute(self, sql: str, params: Params = ()) -> int:
        self._cursor.execute(_pyformat(sql), params)
        return self._cursor.rowcount

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._cursor.executemany(_pyformat(sql), rows)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return self._cursor.execute(_pyformat(sql), params).fetchone()

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._cursor.execute(_pyformat(sql), params).fetchall()

    def lock(self, key: str) -> None:
        self._cursor.execute(_LOCK, (key,))

    def notify(self, channel: str, payload: str) -> None:
        self.signals[channel, payload] = None


def _split_url(url: str) -> tuple[str, str | None]:
    """The libpq URL without Keel's `schema` parameter, and that parameter."""
    base, _, query = url.partition("?")
    kept: list[str] = []
    schema: str | None = None
    for item in query.split("&") if query else ():
        key, _, value = item.partition("=")
        if key == "schema":
            schema = unquote(value)
            if not schema:
                raise ConfigError(f"the database URL has an empty 'schema' parameter: {url}")
        elif item:
            kept.append(item)
    return base + ("?" + "&".join(kept) if kept else ""), schema


def _redact(url: str) -> str:
    """`url` without its password, for messages."""
    url = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split("\n", 1)[0].split())


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _call(
    job: Callable[[], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
) -> None:
    try:
        result = job()
    except BaseException as error:
        outcome: tuple[Any, BaseException | None] = (None, error)
    else:
        outcome = (result, None)
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
        loop.call_soon_threadsafe(_deliver, future, *outcome)


class _Pool:
    """A few threads that run jobs, and the connections the jobs use. A job takes the most
    recently used idle connection (or opens one) and gives it back before its result is
    delivered, so the pool holds as many connections as jobs have ever run at once."""

    def __init__(self, size: int, name: str, connect: Callable[[], Connection]) -> None:
        self._executor = ThreadPoolExecutor(size, thread_name_prefix=name)
        self._connect = connect
        self._idle: list[Connection] = []
        self._guard = threading.Lock()

    def take(self) -> Connection:
        with self._guard:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def give(self, conn: Connection) -> None:
        if not conn.closed:
            with self._guard:
                self._idle.append(conn)

    async def run(self, job: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        try:
            self._executor.submit(_call, job, loop, future)
        except RuntimeError:
            raise StoreError("the store has been closed; open it again") from None
        return await future

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._guard:
            for conn in self._idle:
                conn.close()
            self._idle.clear()


def _unstorable(error: psycopg.DataError) -> ValidationFailed:
    """A value PostgreSQL cannot hold (a NUL character in text, a number out of range): the
    caller's input, not the store, is at fault; nothing was written."""
    return ValidationFailed("a value cannot be stored", [("value", _first_line(error))])


def _rollback(conn: Connection) -> None:
    """End the open transaction; a connection that cannot do even that is closed."""
    if not conn.closed:
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()


class PostgresEngine(Engine):
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._conninfo, self.schema = _split_url(url)
        self.url = _redact(url)
        try:
            params = conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError as error:
            raise ConfigError(
                f"KEEL_DATABASE_URL is not a valid PostgreSQL URL ({_first_line(error)}): "
                f"{self.url}"
            ) from None
        self.where = "{}:{}/{}".format(
            params.get("host") or os.environ.get("PGHOST") or "localhost",
            params.get("port") or os.environ.get("PGPORT") or 5432,
            params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "",
        )
        self._connect_options: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self._connect_options["connect_timeout"] = _CONNECT_TIMEOUT_S
        if "application_name" not in params:
            self._connect_options["application_name"] = _APPLICATION_NAME
        self._signals_options = {
            **self._connect_options,
            "application_name": f"{params.get('application_name') or _APPLICATION_NAME}:signals",
        }
        if "tcp_user_timeout" not in params:  # a ping to a vanished server fails, not hangs
            self._signals_options["tcp_user_timeout"] = _SIGNALS_USER_TIMEOUT_MS
        self._schema_ready = self.schema is None
        self._writers = _Pool(pool_size, "keel-pg-writer", lambda: self._connect(write=True))
        self._readers = _Pool(pool_size, "keel-pg-reader", lambda: self._connect(write=False))
        self._signals = Signals(self._connect_signals, self.where, self.schema)

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, write: bool) -> Connection:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, **self._connect_options)
        except psycopg.Error as error:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.where}: {_first_line(error)}; "
                "check that the server is running and accepts connections there, and that "
                "KEEL_DATABASE_URL names the right host, port, database and user"
            ) from None
        try:
            if self.schema is not None:
                if write and not self._schema_ready:
                    self._create_schema(conn, self.schema)
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.autocommit = False
            if write:
                conn.isolation_level = IsolationLevel.READ_COMMITTED
            else:
                conn.isolation_level = IsolationLevel.REPEATABLE_READ
                conn.read_only = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_signals(self) -> Connection:
        """The connection that sends and listens for notifications: no schema (channels
        are per database), no transactions, no waiting for the disk to confirm a signal."""
        conn = psycopg.connect(self._conninfo, autocommit=True, **self._signals_options)
        try:
            conn.execute("SET synchronous_commit = off")
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: Connection, schema: str) -> None:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if found.fetchone() is None:
            create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            try:
                # Two first opens may both get here; the loser's duplicate is harmless.
                with contextlib.suppress(errors.DuplicateSchema, errors.UniqueViolation):
                    conn.execute(create)
            except psycopg.Error as error:
                raise StoreError(
                    f"cannot create the schema '{schema}' in {self.where}: "
                    f"{_first_line(error)}; create it or grant CREATE on the database"
                ) from None
        self._schema_ready = True

    def _lost(self, error: BaseException) -> StoreError:
        return StoreError(
            f"lost the connection to PostgreSQL at {self.where}: {_first_line(error)}; "
            "check that the server is up"
        )

    # -- jobs, on pool threads -----------------------------------------------------------

    def _write_job(self, work: Work[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            conn = self._writers.take()
            committing = False
            try:
                with conn.cursor() as cursor:
                    tx = _PostgresTx(cursor)
                    result = work(tx)
                committing = True
                conn.commit()
                if tx.signals:
                    self._signals.send(tx.signals)
                return result
            except _RETRYABLE as error:
                _rollback(conn)
                if attempt >= _ATTEMPTS:
                    raise StoreError(
                        f"a write to {self.where} still conflicted with concurrent writes "
                        f"after {attempt} attempts: {_first_line(error)}"
                    ) from error
                time.sleep(_BACKOFF_S * attempt * random.random())
            except psycopg.DataError as error:
                _rollback(conn)
                raise _unstorable(error) from None
            except psycopg.OperationalError as error:
                if not conn.broken:
                    _rollback(conn)
                    raise
                conn.close()
                if committing:
                    raise StoreError(
                        f"lost the connection to PostgreSQL at {self.where} while committing; "
                        f"the write may or may not have been applied: {_first_line(error)}"
                    ) from None
                if attempt >= _ATTEMPTS:
                    raise self._lost(error) from None
            except BaseException:
                _rollback(conn)
                raise
            finally:
                self._writers.give(conn)

    def _read_job(self, work: Work[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            conn = self._readers.take()
            try:
                with conn.cursor() as cursor:
                    return work(_PostgresTx(cursor))
            except psycopg.DataError as error:
                raise _unstorable(error) from None
            except psycopg.OperationalError as error:
                if not conn.broken:
                    raise
                conn.close()
                if attempt >= _ATTEMPTS:
                    raise self._lost(error) from None
            finally:
                _rollback(conn)  # ends the read-only transaction
                self._readers.give(conn)

    # -- the Engine interface ------------------------------------------------------------

    async def write(self, work: Work[T]) -> T:
        return await self._writers.run(lambda: self._write_job(work))

    async def read(self, work: Work[T]) -> T:
        return await self._readers.run(lambda: self._read_job(work))

    def subscribe(self, channel: str, callback: Subscriber) -> Callable[[], None]:
        return self._signals.subscribe(channel, asyncio.get_running_loop(), callback)

    async def close(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._readers.close()
        self._writers.close()
        self._signals.close()  # after the writers: it sends their last signals

    def size_bytes(self) -> int:
        with self._connect(write=False) as conn:
            row = conn.execute(_TABLES_SIZE).fetchone()
        return int(row[0]) if row else 0
