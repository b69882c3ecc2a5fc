"""LLM providers behind one `Model` interface, chosen per agent by a model string
(`<provider>:<name>`): `scripted:<script>`, `openai:<model>`, `anthropic:<model>`, and
`a2a:<agent URL>`, a remote A2A agent that answers as a model does.

Each provider is one module with a `create(name, settings) -> Model` function, imported
only when an agent uses it, so a provider's SDK is needed only by those who use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from keel.errors import ModelConfigError, UnknownModelProvider
from keel.models.base import (
    DeltaSink,
    Message,
    Model,
    ModelResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from keel.models.retry import RetryingModel
from keel.models.scripted import Script, ScriptedModel, scripts
from keel.models.scripts import BUILTIN_SCRIPTS
from keel.models.settings import ModelSettings, ProviderSettings

__all__ = [
    "BUILTIN_SCRIPTS",
    "PROVIDERS",
    "DeltaSink",
    "Message",
    "Model",
    "ModelResponse",
    "ModelSettings",
    "ProviderSettings",
    "RetryingModel",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "check_model_string",
    "register_script",
    "resolve_model",
]

PROVIDERS: dict[str, str] = {
    "scripted": "keel.models.scripted",
    "openai": "keel.models.openai",
    "anthropic": "keel.models.anthropic",
    "a2a": "keel.models.a2a_remote",
}

_EXTRAS = {"openai": "openai", "anthropic": "anthropic", "a2a": "a2a"}


def register_script(name: str, script: Script) -> None:
    """Make `scripted:<name>` available to agent definitions in this process."""
    scripts[name] = script


def check_model_string(model: str) -> str | None:
    """Return a problem with `model`, or None when it names a known provider."""
    provider, _, name = model.partition(":")
    if provider not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        return f"unknown model provider '{provider}' in '{model}' (known: {known})"
    if not name:
        return f"'{model}' names no model; write '{provider}:<name>'"
    if provider == "a2a" and not name.startswith(("http://", "https://")):
        return f"'{model}' names no agent URL; write 'a2a:http(s)://host[:port]/path'"
    if provider == "scripted" and name not in scripts:
        return (
            f"no script named '{name}' (built in: {', '.join(sorted(BUILTIN_SCRIPTS))}; "
            "others are added with keel.models.register_script)"
        )
    return None


def resolve_model(model: str, settings: ModelSettings | None = None) -> RetryingModel:
    """The model an agent's model string names, wrapped in retries and a timeout."""
    problem = check_model_string(model)
    if problem is not None:
        raise UnknownModelProvider(problem)
    settings = settings or ModelSettings()
    provider, _, name = model.partition(":")
    try:
        module = importlib.import_module(PROVIDERS[provider])
    except ImportError as error:
        extra = _EXTRAS.get(provider, provider)
        raise ModelConfigError(
            f"provider '{provider}' needs its SDK ({error.name}): pip install 'keel[{extra}]'"
        ) from None
    create = cast(Callable[[str, ModelSettings], Model], module.create)
    return RetryingModel(
        create(name, settings), max_attempts=settings.max_attempts, timeout_s=settings.timeout_s
    )
