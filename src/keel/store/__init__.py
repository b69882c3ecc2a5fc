"""Durable state: one engine interface, SQLite embedded, migrations applied on open."""

from __future__ import annotations

from pathlib import Path

from keel.errors import ConfigError
from keel.store.engine import Engine, Row, Tx
from keel.store.migrations import migrate
from keel.store.sqlite import SqliteEngine

__all__ = ["Engine", "Row", "SqliteEngine", "Tx", "migrate", "open_engine"]


async def open_engine(url: str) -> Engine:
    """Open the store at `url` (`sqlite:///path`) and apply pending migrations."""
    if url.startswith("sqlite:///"):
        engine: Engine = SqliteEngine(Path(url[len("sqlite:///") :]))
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ConfigError(
            f"unsupported database URL scheme '{scheme}' in KEEL_DATABASE_URL; "
            "use sqlite:///path/to/keel.db"
        )
    try:
        await migrate(engine)
    except BaseException:
        await engine.close()
        raise
    return engine
