"""The editor's file system: when Keel runs as an editor's agent (the Agent Client Protocol),
the file tools read and write through the editor, so a read sees unsaved buffers and a
write shows up (and can be undone) in the editor.

The hook is a context variable: whoever starts a session's run sets it around the
`asyncio.create_task(keel.run(...))`, and every task the run starts inherits it, down to the
tool calls. Nothing else changes: paths are confined to the workspace before the editor is
asked, commands still run in Keel's sandbox, and without an editor the tools use the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol


class EditorFileSystem(Protocol):
    """What an editor offers: reading and writing text files by absolute path. Either side
    may be missing (`reads`, `writes`); failures raise `ToolError` with a message the model
    can act on."""

    @property
    def reads(self) -> bool: ...

    @property
    def writes(self) -> bool: ...

    async def read_text(self, path: Path) -> str: ...

    async def write_text(self, path: Path, content: str) -> None: ...


_editor_fs: ContextVar[EditorFileSystem | None] = ContextVar("keel_editor_fs", default=None)


@contextmanager
def use_editor_fs(fs: EditorFileSystem) -> Iterator[None]:
    """Route the file tools of the tasks created inside this block through `fs`."""
    token = _editor_fs.set(fs)
    try:
        yield
    finally:
        _editor_fs.reset(token)


def current_editor_fs() -> EditorFileSystem | None:
    return _editor_fs.get()


def editor_reading() -> EditorFileSystem | None:
    """The editor to read through, or None to read the disk."""
    fs = _editor_fs.get()
    return fs if fs is not None and fs.reads else None


def editor_writing() -> EditorFileSystem | None:
    """The editor to write through, or None to write the disk."""
    fs = _editor_fs.get()
    return fs if fs is not None and fs.writes else None
