"""Decisions: what was decided, why, what else was considered, who decided, and the exact
fact versions it rests on.

A decision is a fact of kind `decision` whose value is a `Decision`: it has a key, a scope,
versions, a history and provenance like any fact, and it is in the same "visible to this
agent" view. Recording one checks, in the same transaction as the write and its
`decision.recorded` event, that every fact it rests on exists at the version named (a
missing version is taken as the current one), so a decision never points at a value that
was never written.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from pydantic import Field

from keel.blackboard.errors import FactNotFound, InvalidFact
from keel.blackboard.facts import Fact, FactKind, FactRef, FactStore
from keel.blackboard.scopes import Actor
from keel.ids import new_id
from keel.store import Tx
from keel.types import JsonObject, KeelModel


class Decision(KeelModel):
    decision: str = Field(min_length=1)
    rationale: str
    alternatives: list[str] = Field(default_factory=list)
    decided_by: str
    rests_on: list[FactRef] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A decision and the fact version that holds it."""

    fact: Fact
    decision: Decision

    @staticmethod
    def of(fact: Fact) -> RecordedDecision:
        return RecordedDecision(fact, Decision.model_validate(fact.value))


def _pin_in(tx: Tx, facts: FactStore, ref: FactRef, scope: str) -> FactRef:
    """`ref` with its concrete scope and version, once it is known to exist."""
    if ref.version is None:
        found = facts.read_in(tx, (scope,), ref.key)
        if found is None:
            raise FactNotFound(
                f"the decision rests on '{ref.key}' in {scope}, which has no current value; "
                "write the fact first or name the version it rests on"
            )
        return found.ref
    if facts.version_in(tx, scope, ref.key, ref.version) is None:
        raise FactNotFound(
            f"the decision rests on version {ref.version} of '{ref.key}' in {scope}, which "
            "was never written; check the version with blackboard_read"
        )
    return FactRef(scope=scope, key=ref.key, version=ref.version)


class DecisionLog:
    def __init__(self, facts: FactStore) -> None:
        self._facts = facts

    async def record(
        self,
        actor: Actor,
        *,
        decision: str,
        rationale: str,
        alternatives: Sequence[str] = (),
        rests_on: Sequence[FactRef] = (),
        key: str | None = None,
        scope: str = "session",
        expected_version: int | None = None,
    ) -> RecordedDecision:
        """Record a decision by `actor` under `key` (default: a new `decision/<id>`) in
        `scope`. Every ref in `rests_on` must be readable by `actor` and exist."""
        if not decision.strip():
            raise InvalidFact("a decision needs a non-empty 'decision': say what was decided")
        key = key or f"decision/{new_id('d')}"
        subject: JsonObject = {"scope": scope, "key": key}
        target = await self._facts.authorize(
            actor, "write", subject, lambda: actor.resolve(scope, "write")
        )
        basis: list[tuple[FactRef, str]] = []
        for ref in rests_on:
            seen: JsonObject = {"scope": ref.scope, "key": ref.key}
            read = partial(actor.resolve, ref.scope, "read")
            basis.append((ref, await self._facts.authorize(actor, "read", seen, read)))

        def record_in(tx: Tx) -> Fact:
            pinned = [_pin_in(tx, self._facts, ref, concrete) for ref, concrete in basis]
            value = Decision(
                decision=decision,
                rationale=rationale,
                alternatives=list(alternatives),
                decided_by=actor.agent,
                rests_on=pinned,
            )
            summary: JsonObject = {
                "decision": decision,
                "restsOn": [ref.to_json() for ref in pinned],
            }
            return self._facts.write_in(
                tx,
                actor,
                key,
                value.to_json(),
                scope=target,
                expected_version=expected_version,
                kind=FactKind.DECISION,
                event_payload=summary,
            )

        fact = await self._facts.engine.write(record_in)
        self._facts.notify(actor.session_id)
        return RecordedDecision.of(fact)

    async def read(self, actor: Actor, key: str, *, scope: str | None = None) -> RecordedDecision:
        fact = await self._facts.read(actor, key, scope=scope)
        if fact.kind is not FactKind.DECISION:
            raise FactNotFound(f"'{key}' in {fact.scope} is a fact, not a decision")
        return RecordedDecision.of(fact)

    async def list(self, actor: Actor) -> builtins.list[RecordedDecision]:
        """The live decisions `actor` may see, narrowest scope first, then by key."""
        facts = await self._facts.visible(actor, kind=FactKind.DECISION)
        return [RecordedDecision.of(fact) for fact in facts]
