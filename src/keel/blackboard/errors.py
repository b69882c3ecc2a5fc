"""The blackboard's failures: each one a caller (or, through the tools, a model) can act on."""

from __future__ import annotations

from keel.errors import KeelError, NotFound


class BlackboardError(KeelError):
    """Base of the blackboard's errors."""


class ScopeViolation(BlackboardError):
    """An agent tried to read or write beyond its memory scope; nothing was read or
    written, and a `blackboard.denied` event records the attempt."""


class FactConflict(BlackboardError):
    """A write named the version it expected and the fact is at another one; the write
    changed nothing."""

    def __init__(self, scope: str, key: str, expected: int, current: int) -> None:
        self.scope = scope
        self.key = key
        self.expected = expected
        self.current = current
        if current == 0:
            now = "does not exist (or has expired)"
            fix = "write it with expected_version 0"
        elif expected == 0:
            now = f"already exists at version {current}"
            fix = f"read it and write again with expected_version {current}"
        else:
            now = f"is at version {current}"
            fix = f"read it again and retry with expected_version {current}"
        super().__init__(f"'{key}' in {scope} {now}, not at the expected version {expected}; {fix}")


class FactKindMismatch(BlackboardError):
    """A write would turn a decision into a plain fact or the other way round."""


class FactNotFound(BlackboardError, NotFound):
    """No visible fact (or no such version) under a key."""


class InvalidFact(BlackboardError):
    """A key or value that the blackboard does not accept (empty key, not JSON, too big)."""


class ArtifactNotFound(BlackboardError, NotFound):
    """No artifact with that id."""


class ArtifactCorrupted(BlackboardError):
    """An artifact's stored content is missing or no longer matches its checksum; it is
    never served."""
