"""LISTEN/NOTIFY for the PostgreSQL engine: how a commit in one Keel process wakes the
processes waiting for it (an API node streaming a session's events, a worker waiting for
work, a run waiting for a cancellation or an answer).

One connection per engine, on a thread of its own, carries both directions:

* **Sending.** The signals of a write transaction (`Tx.notify`) are handed over once it has
  committed and sent in one `pg_notify` transaction per batch, not inside the writing
  transaction: PostgreSQL serialises the commits of all transactions that notify (a
  database-wide lock held until the commit is flushed), so notifying inside every step
  commit would make the step commits of a whole deployment wait for each other (see
  `bench/pg_workers.py`). Batching leaves one notifying transaction at a time per process,
  at most one per `SEND_EVERY_S`, with `synchronous_commit = off` since a signal needs no
  durability. A signal still goes out only after its transaction committed, and never for
  one that rolled back.
* **Listening.** The connection LISTENs to the channels this process subscribed to and
  hands each signal to the subscribers, on their event loops. Whenever it starts
  listening to a channel — first, and after every reconnection — it calls the channel's
  subscribers with None: signals may have been missed, look at the store.

Channels belong to the database, so a store in a schema of its own signals on channels
named after the schema (`keel_events/<schema>`): stores that share a database never wake
each other.

A signal is a hint, never the change. One whose process died before sending it, or sent
while this connection was down, is lost; subscribers read the store and still poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from keel.store.engine import Subscriber

Connection = psycopg.Connection[TupleRow]

log = logging.getLogger("keel.store")

PING_S = 10.0
"""An idle listening connection is checked this often (a dead one is replaced)."""

SEND_EVERY_S = 0.005
"""At most one notifying transaction per process this often: under load, the signals of
many commits go out together (and the first signal after a quiet spell at once)."""

_BATCH = 1000
_RECONNECT_MIN_S = 0.05
_RECONNECT_MAX_S = 5.0
_STABLE_S = 5.0
_STOP_WAIT_S = 15.0
_MAX_IDENTIFIER = 63
_SEND = "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS s(c, p)"

Signal = tuple[str, str]
"""(channel, payload)"""


def channel_name(name: str, schema: str | None) -> str:
    """The database-wide channel of the store's channel `name`."""
    if schema is None:
        return name
    channel = f"{name}/{schema}"
    if len(channel.encode()) > _MAX_IDENTIFIER:  # PostgreSQL would cut it short
        channel = f"{name}/{hashlib.sha256(schema.encode()).hexdigest()[:16]}"
    return channel


@dataclass(eq=False, slots=True)
class _Subscription:
    channel: str
    loop: asyncio.AbstractEventLoop
    callback: Subscriber


def _call_all(calls: list[tuple[Subscriber, str | None]]) -> None:
    for callback, payload in calls:
        try:
            callback(payload)
        except Exception:
            log.exception("a subscriber of PostgreSQL notifications failed")


class Signals:
    """Sends this process's signals and delivers the signals it subscribed to, over one
    connection made by `connect` (autocommit), on the channels of the store in `schema`.
    The thread starts at the first use."""

    def __init__(self, connect: Callable[[], Connection], where: str, schema: str | None) -> None:
        self._connect = connect
        self._where = where
        self._schema = schema
        self._guard = threading.Lock()
        self._subscriptions: dict[str, list[_Subscription]] = {}
        self._outgoing: dict[Signal, None] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- any thread ----------------------------------------------------------------------

    def subscribe(
        self, channel: str, loop: asyncio.AbstractEventLoop, callback: Subscriber
    ) -> Callable[[], None]:
        channel = channel_name(channel, self._schema)
        subscription = _Subscription(channel, loop, callback)
        with self._guard:
            self._subscriptions.setdefault(channel, []).append(subscription)
            self._start()
        self._wake()

        def unsubscribe() -> None:
            with self._guard:
                found = self._subscriptions.get(channel, [])
                if subscription in found:
                    found.remove(subscription)
                if not found:
                    self._subscriptions.pop(channel, None)
            self._wake()

        return unsubscribe

    def send(self, signals: Iterable[Signal]) -> None:
        """Send `signals` soon (call after the transaction that asked for them committed)."""
        with self._guard:
            if self._stopping:
                return
            for channel, payload in signals:
                self._outgoing[channel_name(channel, self._schema), payload] = None
            if not self._outgoing:
                return
            self._start()
        self._wake()

    def close(self) -> None:
        """Send what is waiting to be sent, stop listening and close the connection."""
        with self._guard:
            self._stopping = True
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(_STOP_WAIT_S)
        for end in (self._wake_r, self._wake_w):
            if end is not None:
                end.close()

    def _start(self) -> None:
        """Start the thread (under the guard) unless it runs or the engine closed."""
        if self._thread is None and not self._stopping:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._thread = threading.Thread(
                target=self._main, args=(self._wake_r,), name="keel-pg-signals", daemon=True
            )
            self._thread.start()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):  # full (it is awake already) or closed
                self._wake_w.send(b"\0")

    # -- the thread ----------------------------------------------------------------------

    def _main(self, wake: socket.socket) -> None:
        delay = _RECONNECT_MIN_S
        failing = False
        while True:
            with self._guard:
                if self._stopping and not self._outgoing:
                    return
            try:
                conn = self._connect()
            except Exception as error:
                if self._stopping:
                    return  # what was left to send is lost: subscribers poll
                if not failing:
                    log.warning(
                        "cannot connect to PostgreSQL at %s for notifications (%s); followers "
                        "and workers poll until it is back",
                        self._where,
                        " ".join(str(error).split()),
                    )
                failing = True
                self._pause(wake, delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            if failing:
                log.info("notifications from PostgreSQL at %s are back", self._where)
            failing = False
            began = time.monotonic()
            try:
                self._serve(conn, wake)
                return
            except Exception as error:
                log.warning(
                    "lost the notification connection to PostgreSQL at %s (%s); reconnecting",
                    self._where,
                    " ".join(str(error).split()),
                )
            finally:
                conn.close()
            if time.monotonic() - began > _STABLE_S:
                delay = _RECONNECT_MIN_S
            self._pause(wake, delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)

    def _serve(self, conn: Connection, wake: socket.socket) -> None:
        """Send, listen and deliver on `conn` until the engine closes; raise when the
        connection fails."""
        listening: set[str] = set()
        next_send = 0.0
        while True:
            now = time.monotonic()
            with self._guard:
                stopping = self._stopping
                wanted = set(self._subscriptions)
                outgoing: list[Signal] = []
                if stopping or now >= next_send:
                    outgoing, self._outgoing = list(self._outgoing), {}
                held = bool(self._outgoing)
            if outgoing:
                self._send(conn, outgoing)
                next_send = now + SEND_EVERY_S
            if stopping:
                return
            fresh = wanted - listening
            for channel in fresh:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            for channel in listening - wanted:
                conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
            listening = wanted
            received: dict[tuple[str, str | None], None] = dict.fromkeys(
                (channel, None) for channel in fresh
            )
            # What arrived while the statements above ran, and what is waiting on the socket.
            for notify in conn.notifies(timeout=0):
                received[notify.channel, notify.payload] = None
            self._deliver(received)
            wait = max(0.0, next_send - time.monotonic()) if held else PING_S
            ready, _, _ = select.select([conn.fileno(), wake.fileno()], [], [], wait)
            if wake.fileno() in ready:
                _drain(wake)
            if not ready and not held:
                conn.execute("SELECT 1")

    def _send(self, conn: Connection, signals: list[Signal]) -> None:
        for start in range(0, len(signals), _BATCH):
            batch = signals[start : start + _BATCH]
            try:
                conn.execute(_SEND, ([c for c, _ in batch], [p for _, p in batch]))
            except psycopg.OperationalError:
                with self._guard:  # the connection failed: send them on the next one
                    for signal in signals[start:]:
                        self._outgoing.setdefault(signal)
                raise

    def _deliver(self, received: dict[tuple[str, str | None], None]) -> None:
        if not received:
            return
        calls: dict[asyncio.AbstractEventLoop, list[tuple[Subscriber, str | None]]] = {}
        with self._guard:
            for channel, payload in received:
                for subscription in self._subscriptions.get(channel, ()):
                    calls.setdefault(subscription.loop, []).append((subscription.callback, payload))
        for loop, batch in calls.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_call_all, batch)

    def _pause(self, wake: socket.socket, seconds: float) -> None:
        """Wait `seconds`, or less if the engine is closing."""
        with contextlib.suppress(OSError, ValueError):
            select.select([wake], [], [], seconds)
        _drain(wake)


def _drain(wake: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while wake.recv(4096):
            pass
