"""Versioned schema migrations, applied in order when a store is opened.

Migration files live beside this module as `NNNN_name.sql`; their statements are portable
SQL separated by `;` at the end of a line. The applied versions are recorded in
`keel_schema`. A database whose schema is newer than this Keel is refused, never touched.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from keel.errors import MigrationError
from keel.store.engine import Engine, Tx

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _split(script: str) -> tuple[str, ...]:
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return tuple(part.strip() for part in re.split(r";\s*$", body, flags=re.M) if part.strip())


def available() -> list[Migration]:
    folder = resources.files("keel.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], _split(entry.read_text("utf-8"))))
    found.sort(key=lambda migration: migration.version)
    return found


def _applied(tx: Tx) -> set[int]:
    return {int(version) for (version,) in tx.fetchall("SELECT version FROM keel_schema")}


async def migrate(engine: Engine) -> int:
    """Bring the schema up to date; return the version it is at."""
    migrations = available()
    latest = migrations[-1].version if migrations else 0

    def apply(tx: Tx) -> int:
        # Processes opening one new database together: the first migrates, the rest wait.
        tx.lock("keel:migrations")
        tx.execute(
            "CREATE TABLE IF NOT EXISTS keel_schema ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        )
        applied = _applied(tx)
        current = max(applied, default=0)
        if current > latest:
            raise MigrationError(
                f"the database {engine.url} has schema version {current}, newer than this "
                f"Keel knows ({latest}); upgrade Keel or point KEEL_HOME or KEEL_DATABASE_URL "
                "elsewhere"
            )
        for migration in migrations:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO keel_schema (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, int(time.time() * 1_000_000)),
            )
        return max(current, latest)

    return await engine.write(apply)
