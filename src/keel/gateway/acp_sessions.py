"""ACP sessions and the Keel sessions their turns ran as.

A Keel session has one goal and runs to its end, while an editor's session takes prompt
after prompt: each prompt turn is a Keel session of its own, in the ACP session's working
directory. This store remembers, per ACP session, its directory and its turns in order, so
`session/load` can replay them and resume the last one. It is a small JSON file per ACP
session under `<home>/acp/`, beside the rest of Keel's local data: an ACP agent runs on
the editor's machine, and the Keel sessions themselves stay in the store as usual.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from pydantic import Field

from keel.types import KeelModel

_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class AcpSessionRecord(KeelModel):
    id: str
    cwd: str
    turns: list[str] = Field(default_factory=list, description="Keel session ids, in order.")


class AcpSessionStore:
    def __init__(self, home: Path) -> None:
        self.folder = home / "acp"

    def _path(self, session_id: str) -> Path | None:
        return self.folder / f"{session_id}.json" if _ID.match(session_id) else None

    async def load(self, session_id: str) -> AcpSessionRecord | None:
        path = self._path(session_id)
        if path is None:
            return None
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            return None
        return AcpSessionRecord.model_validate_json(text)

    async def save(self, record: AcpSessionRecord) -> None:
        path = self._path(record.id)
        if path is None:
            raise ValueError(f"'{record.id}' cannot name an ACP session")

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".json.partial")
            partial.write_text(record.model_dump_json(by_alias=True), encoding="utf-8")
            os.replace(partial, path)

        await asyncio.to_thread(write)
