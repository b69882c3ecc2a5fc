"""The execution backends: what a command in the sandbox can and cannot do, and how the
backend is chosen. Bubblewrap tests run real `bwrap` and skip, with the reason, where it
cannot run; container tests need a docker or podman engine that answers and skip without
one. A fake engine CLI (a real executable on PATH) checks the container command line."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keel.errors import ConfigError
from keel.tools import ToolContext, ToolError
from keel.tools.shell import RunCommand
from keel.workspace import (
    BubblewrapSandbox,
    ContainerSandbox,
    LocalSandbox,
    Sandbox,
    SandboxUnavailable,
    describe_sandbox,
    select_sandbox,
)

PYTHON = shlex.quote(sys.executable)


def bubblewrap_or_skip() -> BubblewrapSandbox:
    try:
        return BubblewrapSandbox()
    except SandboxUnavailable as error:
        pytest.skip(f"bubblewrap cannot run here: {error}")


@pytest.fixture
def bwrap() -> BubblewrapSandbox:
    return bubblewrap_or_skip()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
async def tcp_port() -> AsyncIterator[int]:
    """A TCP server on the host's 127.0.0.1 that greets whoever connects."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def connect_command(port: int) -> str:
    code = (
        f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=3); "
        "print('got', s.recv(5).decode())"
    )
    return f"{PYTHON} -c {shlex.quote(code)}"


# Bubblewrap: the file system


async def test_writes_outside_the_workspace_fail_even_for_root(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    # Where the workspace's parent is under /tmp, that write lands in the private /tmp.
    name = f"keel-sandbox-test-{uuid.uuid4().hex[:8]}"
    targets = [Path("/etc") / name, Path.home() / name, workspace.parent / name]
    command = (
        "mount -o remount,rw / 2>/dev/null && echo remounted; "
        f"touch /etc/{name}; echo x > $HOME/{name}; echo x > ../{name}; echo done"
    )
    try:
        result = await bwrap.run(command, workspace)
        assert "remounted" not in result.output
        assert f"cannot touch '/etc/{name}': Read-only file system" in result.output
        assert f"cannot create {Path.home() / name}: Read-only file system" in result.output
        assert result.output.rstrip().endswith("done")
        assert not any(target.exists() for target in targets)
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


async def test_a_write_inside_the_workspace_lands_on_the_host(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    result = await bwrap.run("mkdir -p out && echo built > out/file && pwd", workspace)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(workspace)
    assert (workspace / "out" / "file").read_text() == "built\n"


async def test_tmp_is_private_to_the_command(bwrap: BubblewrapSandbox, workspace: Path) -> None:
    name = f"keel-sandbox-test-{uuid.uuid4().hex[:8]}"
    host_file = Path("/tmp") / f"{name}-host"
    host_file.write_text("host")
    try:
        result = await bwrap.run(
            f"echo inside > /tmp/{name}; cat /tmp/{name}; ls /tmp/{name}-host", workspace
        )
        assert result.output.startswith("inside\n")
        assert "No such file" in result.output
        assert not (Path("/tmp") / name).exists()
    finally:
        host_file.unlink()


async def test_the_environment_keeps_no_secrets_of_keel(
    bwrap: BubblewrapSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_TEST_API_KEY", "sk-secret")
    result = await bwrap.run("env", workspace, env={"GIVEN": "yes"})
    assert "sk-secret" not in result.output
    assert "GIVEN=yes" in result.output
    assert "TMPDIR=/tmp" in result.output


# Bubblewrap: network, processes, limits


async def test_the_network_is_unreachable_unless_granted(
    bwrap: BubblewrapSandbox, workspace: Path, tcp_port: int
) -> None:
    denied = await bwrap.run(connect_command(tcp_port), workspace)
    assert denied.exit_code != 0
    assert "got hello" not in denied.output
    assert "Connection refused" in denied.output or "unreachable" in denied.output

    granted = await bwrap.run(connect_command(tcp_port), workspace, network=True)
    assert granted.exit_code == 0, granted.output
    assert granted.output.strip() == "got hello"


async def test_a_timed_out_command_s_whole_process_tree_is_killed(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    # One child stays in the group, one leaves it with setsid: neither outlives the timeout.
    command = (
        "(sleep 0.6; touch in-group) & setsid sh -c 'sleep 0.6; touch escaped' & "
        "echo started; sleep 30"
    )
    result = await bwrap.run(command, workspace, timeout_s=0.5)
    assert result.timed_out
    assert result.exit_code is None
    assert result.output == "started\n"
    assert result.duration_s < 1.5
    await asyncio.sleep(0.9)
    assert not (workspace / "in-group").exists()
    assert not (workspace / "escaped").exists()


async def test_background_processes_end_with_the_command(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    result = await bwrap.run("setsid sh -c 'sleep 0.5; touch late' & echo quick", workspace)
    assert result.exit_code == 0
    assert result.duration_s < 0.5
    await asyncio.sleep(0.8)
    assert not (workspace / "late").exists()


async def test_a_memory_limit_stops_a_process_that_allocates_too_much(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    allocate = f"{PYTHON} -c 'x = bytearray({{}} * 2**20); print(len(x) >> 20, \"MB\")'"
    over = await bwrap.run(allocate.format(512), workspace, memory_mb=128)
    assert over.exit_code != 0
    assert "MemoryError" in over.output
    under = await bwrap.run(allocate.format(32), workspace, memory_mb=128)
    assert under.exit_code == 0, under.output
    assert under.output == "32 MB\n"


async def test_output_is_capped_and_the_exit_code_reported(
    bwrap: BubblewrapSandbox, workspace: Path
) -> None:
    result = await bwrap.run(
        "head -c 100000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3", workspace, max_output=1000
    )
    assert result.exit_code == 3
    assert result.truncated
    assert result.output.startswith("x" * 1000 + "\n[cut: 99005 more bytes of output]")


# The run_command tool


async def test_run_command_reaches_the_network_only_when_the_agent_is_granted_it(
    bwrap: BubblewrapSandbox, workspace: Path, tcp_port: int
) -> None:
    tool = RunCommand(bwrap)
    arguments = tool.validate({"command": connect_command(tcp_port)})
    plain = ToolContext(workspace, "s_1", "t_1", "coder")
    granted = ToolContext(workspace, "s_1", "t_1", "coder", network=True)
    assert not (await tool.run(arguments, plain)).startswith("exit code 0")
    assert await tool.run(arguments, granted) == "exit code 0\ngot hello\n"


# Choosing the backend


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one empty folder: no bwrap, docker or podman unless a test puts one there."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_without_bwrap_the_default_is_refused_with_the_fix(bin_dir: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="bubblewrap") as raised:
        select_sandbox()
    message = str(raised.value)
    assert "not installed" in message
    assert "apt-get install bubblewrap" in message
    assert "allow unsandboxed execution in the policy" in message
    line = describe_sandbox()
    assert line.startswith("sandbox: none, so Keel refuses to run commands (L3 and above)")
    assert "\n" not in line


def test_without_bwrap_an_allowed_unsandboxed_run_is_local(bin_dir: Path) -> None:
    assert isinstance(select_sandbox(allow_unsandboxed=True), LocalSandbox)
    line = describe_sandbox(allow_unsandboxed=True)
    assert line.startswith("sandbox: none (bubblewrap (bwrap) is not installed")
    assert "local (no sandbox)" in line


def test_a_bwrap_that_cannot_build_the_sandbox_is_refused(bin_dir: Path) -> None:
    message = "bwrap: No permissions to create new namespace"
    executable(bin_dir / "bwrap", f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    with pytest.raises(SandboxUnavailable, match="cannot create a sandbox here") as raised:
        select_sandbox("bubblewrap")
    assert message in str(raised.value)


def test_local_needs_the_policy_to_allow_unsandboxed_execution() -> None:
    with pytest.raises(SandboxUnavailable, match="allow unsandboxed execution"):
        select_sandbox("local")
    assert isinstance(select_sandbox("local", allow_unsandboxed=True), LocalSandbox)
    with pytest.raises(ConfigError, match="unknown sandbox 'chroot'"):
        select_sandbox("chroot")


def test_bubblewrap_is_the_default_where_it_works() -> None:
    bubblewrap_or_skip()
    assert isinstance(select_sandbox(), BubblewrapSandbox)
    assert isinstance(select_sandbox("auto", allow_unsandboxed=True), BubblewrapSandbox)
    assert describe_sandbox().startswith("sandbox: bubblewrap (")


def test_without_an_engine_the_container_backend_is_refused(bin_dir: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="no container engine is reachable") as raised:
        select_sandbox("container")
    assert "docker is not installed; podman is not installed" in str(raised.value)


async def test_run_command_is_refused_when_no_sandbox_can_run(
    bin_dir: Path, workspace: Path
) -> None:
    tool = RunCommand()
    context = ToolContext(workspace, "s_1", "t_1", "coder")
    with pytest.raises(ToolError, match="refused: no sandbox can run commands here"):
        await tool.run(tool.validate({"command": "true"}), context)


# Containers: a fake engine CLI checks the command line; a real engine runs the rest


FAKE_ENGINE = """#!{python}
import json, os, sys
with open(os.environ["FAKE_ENGINE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "secret": os.environ.get("GIVEN")}}) + "\\n")
if sys.argv[1] == "run":
    os.execv("/bin/sh", sys.argv[sys.argv.index("/bin/sh"):])
"""


async def test_the_container_command_line_isolates_and_cleans_up(
    bin_dir: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "engine.log"
    monkeypatch.setenv("FAKE_ENGINE_LOG", str(log))
    executable(bin_dir / "docker", FAKE_ENGINE.format(python=sys.executable))
    sandbox = select_sandbox("container", container_image="example/image:1")
    assert isinstance(sandbox, ContainerSandbox)
    assert sandbox.engine == "docker"

    result = await sandbox.run("echo hi", workspace, env={"GIVEN": "v"}, memory_mb=256)
    assert result.output == "hi\n"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    run = calls[-1]["argv"]
    assert calls[-1]["secret"] == "v"
    options = " ".join(run[: run.index("example/image:1")])
    for expected in (
        "run --rm --init",
        "--read-only",
        "--tmpfs /tmp:rw,nosuid,nodev",
        "--cap-drop ALL",
        "--network none",
        "--memory 256m --memory-swap 256m",
        "--pids-limit 512",
        f"--mount type=bind,source={workspace},target={workspace}",
        f"--workdir {workspace}",
        f"--user {os.getuid()}:{os.getgid()}",
        "--env GIVEN",
    ):
        assert expected in options
    assert run[-3:] == ["/bin/sh", "-c", "echo hi"]

    await sandbox.run("true", workspace, network=True)
    assert "--network" not in json.loads(log.read_text().splitlines()[-1])["argv"]

    timed_out = await sandbox.run("/bin/sleep 30", workspace, timeout_s=0.3)
    assert timed_out.timed_out
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    name = calls[-2][calls[-2].index("--name") + 1]
    assert calls[-1] == ["rm", "--force", name]


@pytest.fixture
def container() -> Sandbox:
    try:
        return select_sandbox("container")
    except SandboxUnavailable as error:
        pytest.skip(str(error))


async def test_a_container_writes_only_the_workspace_and_has_no_network(
    container: Sandbox, workspace: Path
) -> None:
    result = await container.run("echo x > made; touch /etc/x; echo done", workspace, timeout_s=300)
    assert "Read-only file system" in result.output, result.output
    assert (workspace / "made").read_text() == "x\n"
    offline = await container.run(
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\"",
        workspace,
        timeout_s=300,
    )
    assert offline.exit_code != 0
