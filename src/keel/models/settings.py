"""How models are made for a session: provider addresses, which environment variable holds
each key, timeouts and retries. Keys themselves are never stored: only the variable name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from keel.errors import ModelConfigError


class ProviderSettings(BaseModel):
    """Per-provider settings a session may carry (`config.providers.<name>`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    base_url: str | None = None
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable that holds the key."
    )


@dataclass(frozen=True, slots=True)
class ModelSettings:
    scripted_latency_s: float = 0.0
    timeout_s: float = 120.0
    max_attempts: int = 4
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name) or ProviderSettings()


def env_value(*names: str) -> str | None:
    """The first of `names` that is set to a non-empty value."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def api_key(settings: ModelSettings, provider: str, defaults: tuple[str, ...]) -> str:
    """The provider's key: from the variable the session names, else the usual ones."""
    chosen = settings.provider(provider).api_key_env
    names = (chosen,) if chosen else defaults
    value = env_value(*names)
    if value is None:
        raise ModelConfigError(f"no API key for provider '{provider}': set {' or '.join(names)}")
    return value


def base_url(settings: ModelSettings, provider: str, defaults: tuple[str, ...]) -> str | None:
    return settings.provider(provider).base_url or env_value(*defaults)
