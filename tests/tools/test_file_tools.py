from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from keel.tools import ToolContext, ToolError, builtin_tools
from keel.tools.executor import MAX_RESULT_CHARS, cap

TOOLS = builtin_tools()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(
        "def main():\n    return 1\n\n\ndef helper():\n    return 2\n"
    )
    (root / "README.md").write_text("# app\n")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def ctx(workspace: Path) -> ToolContext:
    return ToolContext(workspace, "s_1", "t_1", "coder")


async def call(workspace: Path, tool: str, **arguments: object) -> str:
    chosen = TOOLS[tool]
    return await chosen.run(chosen.validate(dict(arguments)), ctx(workspace))


async def test_read_file_shows_numbered_lines_and_pages(workspace: Path) -> None:
    out = await call(workspace, "read_file", path="src/app.py", offset=2, limit=2)
    assert out.splitlines()[0] == "     2\t    return 1"
    assert "more lines" in out


async def test_write_file_creates_folders_and_reports(workspace: Path) -> None:
    out = await call(workspace, "write_file", path="docs/new.md", content="hello")
    assert out == "created 'docs/new.md' (5 bytes)"
    assert (workspace / "docs" / "new.md").read_text() == "hello"


async def test_edit_file_replaces_one_exact_match(workspace: Path) -> None:
    out = await call(workspace, "edit_file", path="src/app.py", old="return 2", new="return 3")
    assert out == "edited 'src/app.py' at line 6"
    assert "return 3" in (workspace / "src" / "app.py").read_text()


async def test_edit_file_refuses_an_ambiguous_or_missing_match(workspace: Path) -> None:
    with pytest.raises(ToolError, match="occurs 2 times"):
        await call(workspace, "edit_file", path="src/app.py", old="    return", new="x")
    with pytest.raises(ToolError, match="not found"):
        await call(workspace, "edit_file", path="src/app.py", old="nope", new="x")
    assert (workspace / "src" / "app.py").read_text().count("return") == 2


async def test_list_glob_and_grep_find_files(workspace: Path) -> None:
    assert await call(workspace, "list_dir") == "src/\nREADME.md"
    assert await call(workspace, "glob", pattern="**/*.py") == "src/app.py"
    assert await call(workspace, "grep", pattern=r"def \w+") == (
        "src/app.py:1: def main():\nsrc/app.py:5: def helper():"
    )
    assert await call(workspace, "grep", pattern="zzz") == "no matches"


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "src/../../secret.txt"])
async def test_paths_outside_the_workspace_are_refused(workspace: Path, path: str) -> None:
    with pytest.raises(ToolError, match=r"outside the workspace|absolute path"):
        await call(workspace, "read_file", path=path)
    with pytest.raises(ToolError, match=r"outside the workspace|absolute path"):
        await call(workspace, "write_file", path=path, content="x")


async def test_a_symlink_that_leads_outside_is_refused(workspace: Path) -> None:
    os.symlink(workspace.parent / "secret.txt", workspace / "link.txt")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call(workspace, "read_file", path="link.txt")


async def test_arguments_that_fail_the_schema_name_the_field(workspace: Path) -> None:
    with pytest.raises(ToolError, match="'path': Field required"):
        TOOLS["read_file"].validate({})
    with pytest.raises(ToolError, match="'offset'"):
        TOOLS["read_file"].validate({"path": "a", "offset": 0})


async def test_run_command_runs_in_the_workspace_and_reports_the_exit_code(
    workspace: Path,
) -> None:
    out = await call(workspace, "run_command", command="pwd; echo oops >&2; exit 3")
    assert out.splitlines() == ["exit code 3", str(workspace), "oops"]


async def test_run_command_kills_the_whole_process_tree_on_timeout(
    workspace: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "survived"
    command = f"(sleep 1; touch {marker}) & sleep 30"
    out = await call(workspace, "run_command", command=command, timeout_s=0.2)
    assert out.startswith("killed after 0.2 s")
    await asyncio.sleep(1.3)
    assert not marker.exists()


async def test_run_command_output_is_capped_with_a_note(workspace: Path) -> None:
    out = await call(workspace, "run_command", command="head -c 200000 /dev/zero | tr '\\0' x")
    assert "[cut: " in out
    assert len(out) < 70_000


def test_tool_results_are_capped_with_a_note() -> None:
    text = cap("y" * (MAX_RESULT_CHARS + 10))
    assert text.endswith("[cut: 10 more characters]")


def test_every_builtin_tool_declares_a_schema_and_scopes() -> None:
    for tool in TOOLS.values():
        spec = tool.spec()
        assert spec.parameters["type"] == "object"
        assert tool.scopes, tool.name
    assert TOOLS["run_command"].scopes == ("shell:exec",)
    assert TOOLS["read_file"].read_only
    assert not TOOLS["write_file"].read_only
