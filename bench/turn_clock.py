"""Turn timing shared by both sides of the concurrency benchmark, so both measure alike.

A fake model calls `TurnClock.model_call(conversation)` as it starts answering. A turn is
one model call and the tool call it asks for; its latency runs from the start of its model
call to the start of the next model call of the same conversation, which cannot begin
before the tool's result is back in the conversation (and, for Keel, committed). So every
one of the `turns` tool turns of a conversation is followed by a model call: the last one
by the call that gives the final answer.
"""

from __future__ import annotations

import math
import resource
import time
from itertools import pairwise


class TurnClock:
    def __init__(self) -> None:
        self._starts: dict[str, list[float]] = {}

    def model_call(self, conversation: str) -> None:
        self._starts.setdefault(conversation, []).append(time.perf_counter())

    def latencies_ms(self, conversations: int, turns: int) -> list[float]:
        """The latency of every tool turn; fails unless each of `conversations` made
        exactly `turns + 1` model calls."""
        if len(self._starts) != conversations:
            raise RuntimeError(
                f"{len(self._starts)} conversations called the model, expected {conversations}"
            )
        latencies: list[float] = []
        for conversation, starts in self._starts.items():
            if len(starts) != turns + 1:
                raise RuntimeError(
                    f"{conversation!r} made {len(starts)} model calls, expected {turns + 1}"
                )
            latencies.extend((end - start) * 1000 for start, end in pairwise(starts))
        return latencies


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
