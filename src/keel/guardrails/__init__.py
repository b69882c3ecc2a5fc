"""What may happen: permission levels and scopes, and the one check before every tool call."""

from __future__ import annotations

from keel.guardrails.check import Decision, check
from keel.guardrails.permissions import SCOPE_LEVELS, grants, missing_scopes, required_level

__all__ = ["SCOPE_LEVELS", "Decision", "check", "grants", "missing_scopes", "required_level"]
