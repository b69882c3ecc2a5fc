"""LLM providers behind one `Model` interface, chosen per agent by a model string
(`<provider>:<name>`). Scripts for the scripted provider are registered by name."""

from __future__ import annotations

from dataclasses import dataclass

from keel.errors import UnknownModelProvider
from keel.models.base import Message, Model, ModelResponse, ToolCall, ToolSpec, Usage
from keel.models.scripted import BUILTIN_SCRIPTS, Script, ScriptedModel

__all__ = [
    "BUILTIN_SCRIPTS",
    "PROVIDERS",
    "Message",
    "Model",
    "ModelResponse",
    "ModelSettings",
    "ScriptedModel",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "register_script",
    "resolve_model",
]

PROVIDERS = frozenset({"scripted"})

_scripts: dict[str, Script] = dict(BUILTIN_SCRIPTS)


def register_script(name: str, script: Script) -> None:
    """Make `scripted:<name>` available to agent definitions in this process."""
    _scripts[name] = script


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """How models are made for a session: scripted latency (for demos and tests)."""

    scripted_latency_s: float = 0.0


def check_model_string(model: str) -> str | None:
    """Return a problem with `model`, or None when it names a known provider."""
    provider, _, name = model.partition(":")
    if provider not in PROVIDERS:
        known = ", ".join(sorted(PROVIDERS))
        return f"unknown model provider '{provider}' in '{model}' (known: {known})"
    if not name:
        return f"'{model}' names no model; write '{provider}:<name>'"
    if provider == "scripted" and name not in _scripts:
        return (
            f"no script named '{name}' (built in: {', '.join(sorted(BUILTIN_SCRIPTS))}; "
            "others are added with keel.models.register_script)"
        )
    return None


def resolve_model(model: str, settings: ModelSettings | None = None) -> Model:
    problem = check_model_string(model)
    if problem is not None:
        raise UnknownModelProvider(problem)
    settings = settings or ModelSettings()
    _, _, name = model.partition(":")
    return ScriptedModel(_scripts[name], name=name, latency_s=settings.scripted_latency_s)
