"""Durable state: one engine interface, SQLite embedded or PostgreSQL shared, migrations
applied on open."""

from __future__ import annotations

from pathlib import Path

from keel.errors import ConfigError
from keel.store.engine import Engine, Row, Subscriber, Tx
from keel.store.migrations import migrate
from keel.store.sqlite import SqliteEngine

__all__ = ["Engine", "Row", "SqliteEngine", "Subscriber", "Tx", "migrate", "open_engine"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres(url: str) -> Engine:
    try:
        from keel.store.postgres import PostgresEngine
    except ImportError as error:
        if not (error.name or "").startswith("psycopg"):
            raise
        raise ConfigError(
            "KEEL_DATABASE_URL points at PostgreSQL but its driver (psycopg) is not "
            "installed: pip install 'keel[postgres]'"
        ) from None
    return PostgresEngine(url)


async def open_engine(url: str) -> Engine:
    """Open the store at `url` (`sqlite:///path` or `postgresql://user@host/db`) and apply
    pending migrations."""
    if url.startswith("sqlite:///"):
        engine: Engine = SqliteEngine(Path(url[len("sqlite:///") :]))
    elif url.startswith(_POSTGRES_SCHEMES):
        engine = _postgres(url)
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ConfigError(
            f"unsupported database URL scheme '{scheme}' in KEEL_DATABASE_URL; "
            "use sqlite:///path/to/keel.db or postgresql://user@host:5432/dbname"
        )
    try:
        await migrate(engine)
    except BaseException:
        await engine.close()
        raise
    return engine
