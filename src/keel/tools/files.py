"""The file tools: read, write, edit (exact replacement), list, glob and grep, all confined
to the workspace. When an editor drives the session (`editor_fs`), the content of reads and
writes goes through the editor; the path checks stay here."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from keel.tools.base import ToolContext, ToolError, TypedTool
from keel.tools.editor_fs import editor_reading, editor_writing
from keel.tools.paths import relative, resolve_inside, workspace_root

MAX_READ_BYTES = 256 * 1024
MAX_MATCHES = 200
SKIPPED_DIRS = frozenset({".git", ".venv", "node_modules", "__pycache__", ".keel"})


def _check_not_dir(path: Path, shown: str) -> None:
    if path.is_dir():
        raise ToolError(f"'{shown}' is a directory; use list_dir")


def _check_file(path: Path, shown: str) -> None:
    if not path.exists():
        raise ToolError(f"'{shown}' does not exist")
    _check_not_dir(path, shown)


def _cut(data: bytes, shown: str) -> str:
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[cut: only the first {MAX_READ_BYTES} bytes of '{shown}' are shown]"
    return text


def _text(path: Path, shown: str) -> str:
    _check_file(path, shown)
    data = path.read_bytes()[: MAX_READ_BYTES + 1]
    if b"\0" in data[:8192]:
        raise ToolError(f"'{shown}' is a binary file")
    return _cut(data, shown)


async def _read(path: Path, shown: str) -> str:
    """The text of a file: from the editor when one drives the session, else the disk."""
    editor = editor_reading()
    if editor is None:
        return await asyncio.to_thread(_text, path, shown)
    # The editor may hold a file not saved yet: it says itself when there is none.
    await asyncio.to_thread(_check_not_dir, path, shown)
    return _cut((await editor.read_text(path)).encode(), shown)


async def _write(path: Path, content: str) -> None:
    """Write a file: through the editor when one drives the session, else to the disk."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    editor = editor_writing()
    if editor is None:
        await asyncio.to_thread(path.write_text, content, encoding="utf-8")
    else:
        await editor.write_text(path, content)


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        found.extend(Path(folder) / name for name in sorted(files))
    return found


class ReadFileArgs(BaseModel):
    path: str = Field(description="File path relative to the workspace root.")
    offset: int = Field(default=1, ge=1, description="First line to show (1-based).")
    limit: int = Field(default=2000, ge=1, le=20000, description="How many lines to show.")


class ReadFile(TypedTool[ReadFileArgs]):
    name = "read_file"
    description = "Read a text file of the workspace, with line numbers."
    arguments_model = ReadFileArgs
    scopes = ("file:read",)
    read_only = True
    idempotent = True

    async def call(self, arguments: ReadFileArgs, context: ToolContext) -> str:
        path = resolve_inside(context.workspace, arguments.path)
        text = await _read(path, arguments.path)
        lines = text.splitlines()
        start = arguments.offset - 1
        shown = lines[start : start + arguments.limit]
        body = "\n".join(f"{start + i + 1:>6}\t{line}" for i, line in enumerate(shown))
        if start + arguments.limit < len(lines):
            body += f"\n[{len(lines) - start - arguments.limit} more lines; raise offset to see]"
        return body or f"'{arguments.path}' is empty"


class WriteFileArgs(BaseModel):
    path: str = Field(description="File path relative to the workspace root.")
    content: str = Field(description="The whole new content of the file.")


class WriteFile(TypedTool[WriteFileArgs]):
    name = "write_file"
    description = "Create or overwrite a file of the workspace with the given content."
    arguments_model = WriteFileArgs
    scopes = ("file:write",)
    idempotent = True

    async def call(self, arguments: WriteFileArgs, context: ToolContext) -> str:
        path = resolve_inside(context.workspace, arguments.path)
        if path.is_dir():
            raise ToolError(f"'{arguments.path}' is a directory")
        existed = await asyncio.to_thread(path.exists)
        await _write(path, arguments.content)
        verb = "overwrote" if existed else "created"
        return f"{verb} '{arguments.path}' ({len(arguments.content.encode())} bytes)"


class EditFileArgs(BaseModel):
    path: str = Field(description="File path relative to the workspace root.")
    old: str = Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new: str = Field(description="The text that replaces it.")


class EditFile(TypedTool[EditFileArgs]):
    name = "edit_file"
    description = (
        "Replace one exact occurrence of `old` with `new` in a file. `old` must match "
        "exactly once; include surrounding lines to make it unique."
    )
    arguments_model = EditFileArgs
    scopes = ("file:read", "file:write")

    async def call(self, arguments: EditFileArgs, context: ToolContext) -> str:
        path = resolve_inside(context.workspace, arguments.path)
        text = await _read(path, arguments.path)
        count = text.count(arguments.old)
        if count == 0:
            raise ToolError(f"the text to replace was not found in '{arguments.path}'")
        if count > 1:
            raise ToolError(
                f"the text to replace occurs {count} times in '{arguments.path}'; "
                "include more surrounding lines so it occurs once"
            )
        await _write(path, text.replace(arguments.old, arguments.new, 1))
        line = text[: text.index(arguments.old)].count("\n") + 1
        return f"edited '{arguments.path}' at line {line}"


class ListDirArgs(BaseModel):
    path: str = Field(default=".", description="Directory relative to the workspace root.")


class ListDir(TypedTool[ListDirArgs]):
    name = "list_dir"
    description = "List a directory of the workspace: folders end with '/'."
    arguments_model = ListDirArgs
    scopes = ("file:read",)
    read_only = True
    idempotent = True

    async def call(self, arguments: ListDirArgs, context: ToolContext) -> str:
        path = resolve_inside(context.workspace, arguments.path)
        if not path.is_dir():
            raise ToolError(f"'{arguments.path}' is not a directory")
        entries = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
        lines = [e.name + ("/" if e.is_dir() else "") for e in entries if e.name != ".git"]
        return "\n".join(lines) or f"'{arguments.path}' is empty"


class GlobArgs(BaseModel):
    pattern: str = Field(description="Glob such as '**/*.py' or 'src/*.txt'.")


class Glob(TypedTool[GlobArgs]):
    name = "glob"
    description = "Find files of the workspace whose relative path matches a glob pattern."
    arguments_model = GlobArgs
    scopes = ("file:read",)
    read_only = True
    idempotent = True

    async def call(self, arguments: GlobArgs, context: ToolContext) -> str:
        root = workspace_root(context.workspace)
        pattern = arguments.pattern.removeprefix("./")
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise ToolError("the pattern must stay inside the workspace (no '/' or '..')")
        files = await asyncio.to_thread(_walk, root)
        found = [
            relative(root, f)
            for f in files
            if fnmatch.fnmatch(relative(root, f), pattern)
            or (pattern.startswith("**/") and fnmatch.fnmatch(relative(root, f), pattern[3:]))
        ]
        cut = f"\n[cut: {len(found) - MAX_MATCHES} more]" if len(found) > MAX_MATCHES else ""
        return "\n".join(found[:MAX_MATCHES]) + cut if found else "no files match"


class GrepArgs(BaseModel):
    pattern: str = Field(description="Regular expression (Python syntax).")
    path: str = Field(default=".", description="File or directory to search.")
    glob: str | None = Field(default=None, description="Only files matching this glob.")


class Grep(TypedTool[GrepArgs]):
    name = "grep"
    description = "Search workspace files for a regular expression; shows path:line: text."
    arguments_model = GrepArgs
    scopes = ("file:read",)
    read_only = True
    idempotent = True

    async def call(self, arguments: GrepArgs, context: ToolContext) -> str:
        try:
            regex = re.compile(arguments.pattern)
        except re.error as error:
            raise ToolError(
                f"'{arguments.pattern}' is not a valid regular expression: {error}"
            ) from None
        root = workspace_root(context.workspace)
        start = resolve_inside(root, arguments.path)

        def search() -> list[str]:
            files = [start] if start.is_file() else _walk(start)
            hits: list[str] = []
            for file in files:
                shown = relative(root, file)
                if arguments.glob and not fnmatch.fnmatch(shown, arguments.glob):
                    continue
                try:
                    text = file.read_text("utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                for number, line in enumerate(text.splitlines(), 1):
                    if regex.search(line):
                        hits.append(f"{shown}:{number}: {line.strip()[:200]}")
                        if len(hits) > MAX_MATCHES:
                            return hits
            return hits

        hits = await asyncio.to_thread(search)
        if not hits:
            return "no matches"
        cut = "\n[cut: more matches; narrow the pattern]" if len(hits) > MAX_MATCHES else ""
        return "\n".join(hits[:MAX_MATCHES]) + cut
