"""The built-in scripts of the scripted model: a small coding team whose every reply is a
function of the conversation, so runs are repeatable and a resumed session gets the same
replies. `coder` knows one kind of bug (the demo's: an `add` that subtracts); on any other
code it reports that it found nothing to change.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Sequence

from keel.models.base import Message, ToolCall, ToolSpec

Reply = str | Message


def last_user(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def goal_of(text: str) -> str:
    match = re.search(r"^Goal: (.+)$", text, flags=re.M)
    if match:
        return match[1].strip()
    return text.strip().splitlines()[0] if text.strip() else ""


def _turn(messages: Sequence[Message]) -> int:
    return sum(1 for message in messages if message.role == "assistant")


def _results(messages: Sequence[Message]) -> list[str]:
    """The tool results since the last assistant message."""
    found: list[str] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        found.append(message.content)
    return list(reversed(found))


Call = tuple[str, dict[str, object]]


def _use(messages: Sequence[Message], say: str, *calls: Call) -> Message:
    """An answer that calls tools; call ids are numbered by turn, so replies repeat."""
    turn = _turn(messages) + 1
    tool_calls = [
        ToolCall(id=f"call_{turn}_{i}", name=name, arguments=arguments)
        for i, (name, arguments) in enumerate(calls)
    ]
    return Message(role="assistant", content=say, tool_calls=tool_calls)


def plan_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    """Split the goal at commas, semicolons and ' and ' (or into investigate / implement /
    verify), giving each part the role whose name it mentions, else the first role."""
    prompt = last_user(messages)
    goal = goal_of(prompt)
    roles_line = re.search(r"^Roles you can assign: (.+)\.$", prompt, flags=re.M)
    roles = [r.strip() for r in roles_line[1].split(",")] if roles_line else ["worker"]
    parts = [p.strip(" .") for p in re.split(r",|;|\band\b", goal) if p.strip(" .")]
    if len(parts) < 2:
        parts = [f"Investigate: {goal}", f"Implement: {goal}", f"Verify: {goal}"]

    def role_for(part: str) -> str:
        lowered = part.lower()
        if "tester" in roles and "test" in lowered:
            return "tester"
        coders = [r for r in roles if r != "tester"]
        return coders[0] if coders else roles[0]

    tasks = [{"goal": part[:1].upper() + part[1:], "role": role_for(part)} for part in parts]
    return json.dumps({"tasks": tasks})


def work_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    goal = goal_of(last_user(messages))
    return f"Done: {goal[:1].lower() + goal[1:]}, and checked against the session goal."


TEST_COMMAND = f"{shlex.quote(sys.executable)} -B -m unittest discover -v"


def test_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    """Run the tests; report what fails, or that they pass."""
    results = _results(messages)
    if _turn(messages) == 0:
        return _use(messages, "Running the tests.", ("run_command", {"command": TEST_COMMAND}))
    output = results[-1] if results else ""
    if output.startswith("exit code 0"):
        ran = re.search(r"^Ran \d+ tests?.*$", output, flags=re.M)
        return f"The tests pass ({ran[0] if ran else 'exit code 0'})."
    failures = re.findall(r"^(?:FAIL|ERROR): .+$|^\w*Error: .+$", output, flags=re.M)
    detail = "; ".join(dict.fromkeys(failures)) or output.strip().splitlines()[-1:]
    return f"The tests fail: {detail}."


_SUBTRACTING_ADD = re.compile(r"def add\(a, b\):\n(\s+)return a - b")


def code_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    """Find the Python files, read them together, fix an `add` that subtracts."""
    turn = _turn(messages)
    results = _results(messages)
    if turn == 0:
        return _use(messages, "Looking for the code.", ("glob", {"pattern": "**/*.py"}))
    if turn == 1:
        files = [f for f in results[0].splitlines() if f.endswith(".py")][:8]
        if not files:
            return "There is no Python code in the workspace; nothing to change."
        reads: list[Call] = [("read_file", {"path": f}) for f in files]
        return _use(messages, "Reading the code.", *reads)
    if turn == 2:
        for result, call in zip(results, _last_calls(messages), strict=False):
            code = "\n".join(line.split("\t", 1)[-1] for line in result.splitlines())
            if _SUBTRACTING_ADD.search(code):
                return _use(
                    messages,
                    f"add() in {call.arguments['path']} subtracts; fixing it.",
                    (
                        "edit_file",
                        {
                            "path": call.arguments["path"],
                            "old": "return a - b",
                            "new": "return a + b",
                        },
                    ),
                )
        return "I read the code and found nothing I know how to fix."
    outcome = results[-1] if results else ""
    if outcome.startswith("error"):
        return f"The fix did not apply: {outcome}"
    return "Fixed add(): it subtracted b instead of adding it."


def _last_calls(messages: Sequence[Message]) -> list[ToolCall]:
    for message in reversed(messages):
        if message.role == "assistant":
            return message.tool_calls
    return []


def review_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    results = re.findall(r"^- (.+)$", last_user(messages), flags=re.M)
    verdict = "Approved." if results and "fail" not in results[-1].lower() else "Not approved."
    count = f"{len(results)} result{'s' if len(results) != 1 else ''}"
    last = f" The last says: {results[-1]}" if results else ""
    return f"Reviewed {count}.{last} {verdict}"


def route_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    """Choose the listed agent whose name or role the task mentions, else the first."""
    prompt = last_user(messages)
    task = re.search(r"^Task: (.+)$", prompt, flags=re.M)
    listed: list[tuple[str, str]] = re.findall(r"^- (\S+) \(role (\S+);", prompt, flags=re.M)
    words = set(re.findall(r"\w+", task[1].lower())) if task else set()
    for name, role in listed:
        if name.lower() in words or role.lower() in words:
            return name
    return listed[0][0] if listed else "nobody"


def echo_script(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Reply:
    return last_user(messages)


BUILTIN_SCRIPTS = {
    "planner": plan_script,
    "worker": work_script,
    "coder": code_script,
    "tester": test_script,
    "reviewer": review_script,
    "router": route_script,
    "echo": echo_script,
}
