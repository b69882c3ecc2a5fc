"""Reading the YAML files users write (agents, workflows): one place that turns a missing
file or a syntax error into a `ValidationFailed` naming the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from keel.errors import ValidationFailed


def read_yaml(path: Path, error: type[ValidationFailed]) -> Any:
    """The parsed content of `path`; a file that cannot be read or parsed raises `error`."""
    try:
        text = path.read_text("utf-8")
    except OSError as problem:
        raise error(str(path), [("(file)", problem.strerror or str(problem))]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        said = getattr(problem, "problem", None) or str(problem)
        raise error(str(path), [(where, f"not valid YAML: {said}")]) from None
