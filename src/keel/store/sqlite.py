"""The SQLite engine: the embedded default, one WAL file under `KEEL_HOME`.

Writes are serialised by one lock per engine and reach the file in one of two ways:

* **inline**, on the caller's thread, when no other write is queued or running: one
  session stepping on its own pays no thread hand-off (on a small VM the hand-off costs
  as much as half a commit). The inline connection never waits for another process's
  lock (`busy_timeout = 0`): if the file is busy it hands the work to the writer thread.
* **grouped**, on the writer thread, when writes arrive together: everything queued is
  committed in one transaction (group commit), each item in its own savepoint so that a
  failing item rolls back alone.

Reads run on a reader thread with its own connection, which WAL lets proceed while a
write is in flight.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import StoreError
from keel.store.engine import Engine, Params, Row, T, Work

_MAX_GROUP = 64
_WAIT_FOR_LOCK_MS = 10_000


class _SqliteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def lock(self, key: str) -> None:
        """Nothing to do: SQLite writers are already serialised."""

    def notify(self, channel: str, payload: str) -> None:
        """Nothing to do: SQLite has no cross-process signals; other processes poll."""


@dataclass(slots=True)
class _Job:
    work: Work[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _translate(error: BaseException) -> BaseException:
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return StoreError(f"the database is locked by another process for too long: {error}")
    return error


@dataclass(slots=True)
class _Failed:
    error: BaseException


@dataclass(slots=True)
class _Busy:
    """Another process holds the write lock: the work goes to the writer thread."""


def _run_batch(conn: sqlite3.Connection, begin: str, batch: list[Work[Any]]) -> list[Any]:
    """Run `batch` in one transaction; return a result or a `_Failed` for each item."""
    try:
        conn.execute(begin)
    except sqlite3.Error as error:
        return [_Failed(_translate(error))] * len(batch)
    return _finish_batch(conn, batch)


def _finish_batch(conn: sqlite3.Connection, batch: list[Work[Any]]) -> list[Any]:
    """Run `batch` in the transaction that is open on `conn`, then commit it."""
    outcomes: list[Any] = []
    tx = _SqliteTx(conn)
    try:
        if len(batch) == 1:
            outcomes.append(batch[0](tx))
        else:
            for work in batch:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append(work(tx))
                except Exception as error:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append(_Failed(error))
                conn.execute("RELEASE job")
        conn.execute("COMMIT")
    except BaseException as error:
        if conn.in_transaction:
            conn.rollback()
        return [_Failed(_translate(error))] * len(batch)
    return outcomes


class _Worker:
    """A thread that runs jobs from a queue on its own connection, under `lock`."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        name: str,
        *,
        begin: str,
        group: bool,
        lock: threading.Lock,
    ) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.lock = lock
        self._connect = connect
        self._begin = begin
        self._group = group
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)
        self._thread.join()

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as error:
            self._open_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                with self.lock:
                    batch = [job]
                    while self._group and len(batch) < _MAX_GROUP:
                        try:
                            more = self.jobs.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            self.jobs.put(None)
                            break
                        batch.append(more)
                    outcomes = _run_batch(conn, self._begin, [j.work for j in batch])
                for done, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, _Failed):
                        done.loop.call_soon_threadsafe(_deliver, done.future, None, outcome.error)
                    else:
                        done.loop.call_soon_threadsafe(_deliver, done.future, outcome, None)
        finally:
            conn.close()


class SqliteEngine(Engine):
    dialect = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.synchronous = synchronous
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the data directory {path.parent}: {error.strerror}; "
                "set KEEL_HOME to a writable directory"
            ) from None
        self._write_lock = threading.Lock()
        self._arrivals = 0
        try:
            self._writer = _Worker(
                lambda: self._connect_writer(_WAIT_FOR_LOCK_MS),
                "keel-sqlite-writer",
                begin="BEGIN IMMEDIATE",
                group=True,
                lock=self._write_lock,
            )
            self._reader = _Worker(
                self._connect_reader,
                "keel-sqlite-reader",
                begin="BEGIN",
                group=False,
                lock=threading.Lock(),
            )
            # Set up with the usual patience (another process may hold a lock for a moment),
            # then never wait: a busy file sends the work to the writer thread instead.
            self._inline = self._connect_writer(_WAIT_FOR_LOCK_MS)
            self._inline.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the database {path}: {error}") from None

    def _connect(self, wait_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        return conn

    def _connect_writer(self, wait_ms: int) -> sqlite3.Connection:
        conn = self._connect(wait_ms)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch {self.path} to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect(_WAIT_FOR_LOCK_MS)
        conn.execute("PRAGMA query_only = 1")
        return conn

    def _writer_idle(self) -> bool:
        return self._writer.jobs.empty() and not self._write_lock.locked()

    async def write(self, work: Work[T]) -> T:
        self._arrivals += 1
        if self._writer_idle():
            # Let coroutines that are ready to write arrive first: if any does, this write
            # joins the group commit on the writer thread instead of running alone.
            seen = self._arrivals
            await asyncio.sleep(0)
            alone = self._arrivals == seen
            if alone and self._writer_idle() and self._write_lock.acquire(blocking=False):
                try:
                    outcome = self._run_inline(work)
                finally:
                    self._write_lock.release()
                if isinstance(outcome, _Failed):
                    raise outcome.error
                if not isinstance(outcome, _Busy):
                    return outcome
        return await self._submit(self._writer, work)

    def _run_inline(self, work: Work[T]) -> T | _Failed | _Busy:
        try:
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                return _Busy()
            raise StoreError(f"cannot write to {self.path}: {error}") from None
        outcome: T | _Failed = _finish_batch(self._inline, [work])[0]
        return outcome

    async def read(self, work: Work[T]) -> T:
        return await self._submit(self._reader, work)

    async def _submit(self, worker: _Worker, work: Work[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        worker.submit(_Job(work, loop, future))
        return await future

    async def close(self) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._reader.stop()
        self._writer.stop()
        with self._write_lock:
            self._inline.close()

    def size_bytes(self) -> int:
        return sum(
            candidate.stat().st_size
            for candidate in (self.path, Path(f"{self.path}-wal"))
            if candidate.exists()
        )
