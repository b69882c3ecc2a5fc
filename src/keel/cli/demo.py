"""The demo's workspace: a small git repository whose tests fail because of one bug."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from keel.ids import new_id

DEMO_GOAL = "Find out why the tests fail; fix the bug; run the tests to confirm they pass"

FILES = {
    "calc.py": '''"""A tiny calculator."""


def add(a, b):
    return a - b


def multiply(a, b):
    return a * b
''',
    "test_calc.py": """import unittest

from calc import add, multiply


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_multiply(self):
        self.assertEqual(multiply(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
""",
    "README.md": "# calc\n\nA tiny calculator. Run the tests with `python -m unittest`.\n",
    ".gitignore": "__pycache__/\n*.pyc\n",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Keel demo", "-c", "user.email=demo@keel.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def create_demo_repo(parent: Path | None = None) -> Path:
    """A new git repository with a failing test, committed: in a new temporary folder, or
    under `parent` (never inside Keel's home, which a session may not work in)."""
    if parent is None:
        repo = Path(tempfile.mkdtemp(prefix="keel-demo-")) / "calc"
    else:
        repo = parent / new_id("repo")
    repo.mkdir(parents=True)
    for name, text in FILES.items():
        (repo / name).write_text(text)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "calc with a failing test")
    return repo
