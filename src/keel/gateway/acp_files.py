"""The editor's file system over the Agent Client Protocol (`fs/read_text_file`,
`fs/write_text_file`), as the file tools' `EditorFileSystem`."""

from __future__ import annotations

from pathlib import Path

from acp import Client, RequestError

from keel.tools import ToolError


class EditorFiles:
    def __init__(self, client: Client, session_id: str, *, reads: bool, writes: bool) -> None:
        self._client = client
        self._session_id = session_id
        self._reads = reads
        self._writes = writes

    @property
    def reads(self) -> bool:
        return self._reads

    @property
    def writes(self) -> bool:
        return self._writes

    async def read_text(self, path: Path) -> str:
        try:
            response = await self._client.read_text_file(
                session_id=self._session_id, path=str(path)
            )
        except (RequestError, ConnectionError) as error:
            raise ToolError(f"the editor could not read {path}: {error}") from None
        return response.content

    async def write_text(self, path: Path, content: str) -> None:
        try:
            await self._client.write_text_file(
                session_id=self._session_id, path=str(path), content=content
            )
        except (RequestError, ConnectionError) as error:
            raise ToolError(f"the editor could not write {path}: {error}") from None
