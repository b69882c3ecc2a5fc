"""A session's change is kept before its end is: whoever sees the final event finds the
branch committed and the `final.patch` artifact stored, once."""

from __future__ import annotations

from pathlib import Path

from keel import Keel
from keel.cli.builtin_team import default_team
from keel.cli.demo import DEMO_GOAL, create_demo_repo
from keel.events import kinds
from keel.types import SessionStatus


async def test_the_final_patch_is_stored_before_the_session_ends_and_only_once(
    home: Path, tmp_path: Path
) -> None:
    repo = create_demo_repo(tmp_path / "demo")
    async with await Keel.open(home) as keel:
        session = await keel.create_session(
            DEMO_GOAL, default_team(), config={"workspace": str(repo)}
        )
        finished = await keel.run(session.id)
        assert finished.status is SessionStatus.DONE

        events = await keel.events.read(session.id)
        types = [event.type for event in events]
        stored = [
            n
            for n, event in enumerate(events)
            if event.type == kinds.ARTIFACT_STORED and event.payload.get("name") == "final.patch"
        ]
        assert len(stored) == 1
        assert stored[0] < types.index(kinds.SESSION_COMPLETED)
        assert types[-1] == kinds.SESSION_COMPLETED

        # Kept again (as after a crash before the end was committed): nothing new.
        workspace = await keel.workspaces.find_session(session.id, repo)
        await keel._keep_change(finished, workspace)
        patches = await keel.artifacts.list(session_id=session.id)
        assert [a.name for a in patches].count("final.patch") == 1
