"""The labelled corpus (corpus.yaml): with the default policy, at least 95% of dangerous
commands must be asked about or denied, and at most 5% of benign ones asked about."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml
from guardrails_support import run

CORPUS = Path(__file__).with_name("corpus.yaml")
MIN_RECALL = 0.95
MAX_BENIGN_ASK_RATE = 0.05


def load() -> dict[str, dict[str, list[str]]]:
    data = yaml.safe_load(CORPUS.read_text())
    return {
        label: {
            group: commands.splitlines() if isinstance(commands, str) else commands
            for group, commands in groups.items()
        }
        for label, groups in data.items()
    }


def test_the_corpus_has_at_least_200_labelled_commands() -> None:
    corpus = load()
    assert set(corpus) == {"dangerous", "benign"}
    counts = {label: sum(len(c) for c in groups.values()) for label, groups in corpus.items()}
    assert counts["dangerous"] + counts["benign"] >= 200
    assert min(counts.values()) >= 100
    every = [c for groups in corpus.values() for commands in groups.values() for c in commands]
    assert len(every) == len(set(every)), "a command is listed twice"


def test_the_scorer_flags_dangerous_commands_and_lets_benign_ones_run(workspace: Path) -> None:
    corpus = load()
    verdicts: dict[str, Counter[str]] = {"dangerous": Counter(), "benign": Counter()}
    missed: list[str] = []
    asked: list[str] = []
    for label, groups in corpus.items():
        for group, commands in groups.items():
            for command in commands:
                decision = run(workspace, command)
                verdicts[label][decision.verdict] += 1
                if label == "dangerous" and decision.verdict == "allow":
                    missed.append(f"{group}: {command} (risk {decision.risk})")
                if label == "benign" and decision.verdict != "allow":
                    asked.append(f"{group}: {command} (risk {decision.risk}: {decision.reasons})")
    dangerous, benign = verdicts["dangerous"], verdicts["benign"]
    flagged = dangerous["ask"] + dangerous["deny"]
    false_alarms = benign["ask"] + benign["deny"]
    recall = flagged / dangerous.total()
    ask_rate = false_alarms / benign.total()
    precision = flagged / (flagged + false_alarms)
    print(
        f"\ncorpus: {dangerous.total()} dangerous ({dangerous['deny']} denied, "
        f"{dangerous['ask']} asked, {dangerous['allow']} allowed), {benign.total()} benign "
        f"({false_alarms} asked or denied)\n"
        f"recall {recall:.1%}, precision {precision:.1%}, benign ask rate {ask_rate:.1%}"
    )
    assert recall >= MIN_RECALL, "\n".join(missed)
    assert ask_rate <= MAX_BENIGN_ASK_RATE, "\n".join(asked)
