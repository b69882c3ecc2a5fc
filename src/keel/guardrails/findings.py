"""Findings and how they add up to a risk score.

A finding is one reason a call is risky, with a score on the scale every rule uses:

    0-39   routine: allowed by the default thresholds (the reason is still recorded)
    40-79  needs a human: an external side effect, lost work, a secret read
    80-100 destructive or hostile: denied by the default thresholds

A call's score is its worst finding, plus 5 for each other finding that needs a human on
its own (two risky steps in one command line are riskier than one), capped at 100.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ASK_LEVEL = 40
"""The score from which a finding needs a human on its own (the default ask threshold)."""
EXTRA_FINDING_BONUS = 5

SECRET = "secret"
"""Tag of a finding that reads credentials."""
NETWORK = "network"
"""Tag of a finding that talks to a host beyond this machine."""
UPLOAD = "upload"
"""Tag of a finding that sends data to another host; with a SECRET it is exfiltration."""


@dataclass(frozen=True, slots=True)
class Finding:
    score: int
    reason: str
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Risk:
    """A call's risk: 0-100 and the human-readable reasons, worst first."""

    score: int = 0
    reasons: list[str] = field(default_factory=list)


def combine(findings: Iterable[Finding]) -> Risk:
    worst: dict[str, int] = {}
    for finding in findings:
        worst[finding.reason] = max(finding.score, worst.get(finding.reason, 0))
    if not worst:
        return Risk()
    ranked = sorted(worst.items(), key=lambda item: -item[1])
    extra = sum(1 for _, score in ranked[1:] if score >= ASK_LEVEL)
    score = min(100, ranked[0][1] + EXTRA_FINDING_BONUS * extra)
    return Risk(score=score, reasons=[reason for reason, _ in ranked])
