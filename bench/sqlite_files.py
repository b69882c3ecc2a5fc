"""What every SQLite-backed benchmark side needs: a durable connection (WAL with
`synchronous=FULL`), the settings read back, and the bytes a database holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def synchronous_name(value: int) -> str:
    return SYNCHRONOUS_NAMES.get(value, str(value))


def connect_durable(db_path: Path) -> sqlite3.Connection:
    """WAL and synchronous=FULL, set explicitly. `check_same_thread=False`: LangGraph calls
    its saver from worker threads (SqliteSaver serialises access with its own lock)."""
    conn = sqlite3.connect(str(db_path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def read_pragmas(conn: sqlite3.Connection) -> tuple[str, str]:
    """The journal mode and synchronous setting as the connection reports them."""
    journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    return journal_mode, synchronous_name(int(conn.execute("PRAGMA synchronous").fetchone()[0]))


def stored_bytes(conn: sqlite3.Connection, db_path: Path) -> int:
    """The database's size once the WAL is checkpointed into it (main file plus what is
    left of the `-wal` file; the `-shm` index is not counted)."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError("wal_checkpoint(TRUNCATE) could not complete")
    wal = Path(f"{db_path}-wal")
    return db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def stored_bytes_at(db_path: Path) -> int:
    """`stored_bytes` on a connection of its own."""
    conn = sqlite3.connect(db_path)
    try:
        return stored_bytes(conn, db_path)
    finally:
        conn.close()
