"""The one exception tree of Keel.

Every failure a caller can act on is a subclass of `KeelError` whose message names the
thing that failed and, where there is one, the fix. The CLI prints `str(error)` on one
line and exits with `error.exit_code`.
"""

from __future__ import annotations

from collections.abc import Sequence


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""

    exit_code = 2


class ValidationFailed(KeelError):
    """Input did not match the data model; `problems` names each bad field."""

    def __init__(self, subject: str, problems: Sequence[tuple[str, str]]) -> None:
        self.subject = subject
        self.problems = list(problems)
        detail = "; ".join(f"field '{field}': {message}" for field, message in self.problems)
        super().__init__(f"{subject}: {detail}" if detail else subject)


class AgentDefinitionError(ValidationFailed):
    """An agent definition (a YAML file or a Python object) is invalid."""


class DuplicateAgent(KeelError):
    """Two definitions in one registration share a name."""


class UnknownAgent(KeelError):
    """An agent name or version that is not registered."""


class NotFound(KeelError):
    """A session, task or other record that does not exist."""


class SessionNotFound(NotFound):
    pass


class TaskNotFound(NotFound):
    pass


class IllegalTransition(KeelError):
    """A task or session status change that the state machine does not allow."""

    def __init__(self, what: str, current: str, requested: str, allowed: Sequence[str]) -> None:
        self.current = current
        self.requested = requested
        options = ", ".join(allowed) if allowed else f"none: '{current}' is final"
        super().__init__(
            f"{what} cannot go from '{current}' to '{requested}' (allowed from '{current}': "
            f"{options})"
        )


class SessionNotResumable(KeelError):
    """A session that has already ended cannot be resumed."""


class StoreError(KeelError):
    """The durable store cannot be opened or used."""


class MigrationError(StoreError):
    """The database schema is newer than this Keel, or a migration failed."""


class ModelError(KeelError):
    """A model provider failed or returned something unusable."""


class UnknownModelProvider(ModelError):
    pass


class ModelUnavailable(ModelError):
    """A failure that a retry may fix. `kind` says which: `rate_limit`, `server_error`,
    `connection` or `timeout`; retry policies choose among them."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, kind: str = "server_error"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind


class ModelConfigError(ModelError):
    """A provider cannot be used as configured: a missing key, a missing SDK, a bad URL."""


class ModelRefused(ModelError):
    """The provider refused the request for a reason a retry will not fix (4xx)."""


class PlanError(KeelError):
    """A planner's plan failed validation."""


class ConfigError(KeelError):
    """A configuration value (environment variable, flag, file) is invalid."""
