"""The store's engine interface: portable SQL run in transactions, off the event loop.

Modules above the store (events, registry, orchestrator) own their SQL and hand the engine
a plain function that receives a `Tx`. The engine runs it inside one transaction on a
thread of its own, so the asyncio loop never blocks on the database. SQL uses `?`
placeholders and portable types; an engine translates what its driver needs.

Signals. A transaction may ask to signal a channel once it commits (`Tx.notify`), and a
process may `Engine.subscribe` to a channel to hear the signals of every process that shares
the store. This is optional: an engine that cannot signal across processes (SQLite) drops
them and never calls back. A signal is a hint that something changed, never the change
itself: it may be lost, so a subscriber reads the store when woken, and still polls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[Any]


class Tx(Protocol):
    """One open transaction. Everything done through it commits or rolls back together."""

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    def lock(self, key: str) -> None:
        """Serialise this transaction with every other transaction that locks `key`, until
        it ends. Take it before reading what the transaction will change."""
        ...

    def notify(self, channel: str, payload: str) -> None:
        """Signal `channel` with `payload` after this transaction commits (never if it rolls
        back). Signals repeated in one transaction are sent once; an engine without
        cross-process signals ignores them."""
        ...


Work = Callable[[Tx], T]

Subscriber = Callable[[str | None], None]
"""Called on the subscribing event loop with a signal's payload, or with None when signals
may have been missed (the engine's listener reconnected): then look at everything."""


def _no_subscription() -> None:
    """The end of a subscription that never delivers anything."""


class Engine(ABC):
    """Where durable state lives. Each `write` is one transaction; writes that touch the
    same records serialise with `Tx.lock`. `read` work sees a consistent snapshot."""

    dialect: str
    url: str

    @abstractmethod
    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction and commit it; an exception rolls it back."""

    @abstractmethod
    async def read(self, work: Work[T]) -> T:
        """Run `work` against a consistent snapshot; it must not write."""

    @abstractmethod
    async def close(self) -> None: ...

    def subscribe(self, channel: str, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` on the running event loop whenever a transaction of any process
        that shares this store commits a `Tx.notify(channel, ...)`; return the function that
        ends the subscription. The default delivers nothing: subscribers poll."""
        return _no_subscription

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes the engine holds on disk for this store (for reports and benchmarks)."""
