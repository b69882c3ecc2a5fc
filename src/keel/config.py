"""Where Keel keeps its data: `KEEL_HOME` (default `./.keel`) and `KEEL_DATABASE_URL`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".keel"
DATABASE_FILE = "keel.db"


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str

    @staticmethod
    def from_env(home: Path | str | None = None, *, database_url: str | None = None) -> Settings:
        """`home` and `database_url` win over the environment; the database defaults to a
        SQLite file under the home."""
        root = Path(home) if home is not None else Path(os.environ.get("KEEL_HOME", DEFAULT_HOME))
        url = (
            database_url
            or os.environ.get("KEEL_DATABASE_URL")
            or f"sqlite:///{root / DATABASE_FILE}"
        )
        return Settings(home=root, database_url=url)
