from __future__ import annotations

import asyncio
from pathlib import Path

from keel import Keel
from keel.events import NewEvent, kinds


async def test_appends_get_a_gap_free_sequence_per_session(keel: Keel) -> None:
    first = await keel.start_flow("a")
    second = await keel.start_flow("b")
    batches = [[NewEvent("note", payload={"n": n, "i": i}) for i in range(3)] for n in range(20)]
    await asyncio.gather(
        *(keel.events.append(first.id, keel.run_id, batch) for batch in batches),
        keel.events.append(second.id, keel.run_id, [NewEvent("note")]),
    )
    events = await keel.events.read(first.id)
    assert [e.seq for e in events] == list(range(1, 62))  # session.created is 1
    assert [e.id for e in events[:2]] == [f"{first.id}:1", f"{first.id}:2"]
    # each batch is contiguous: events that came together stay together
    notes = [e for e in events if e.type == "note"]
    for start in range(0, 60, 3):
        assert len({e.payload["n"] for e in notes[start : start + 3]}) == 1
    assert [e.seq for e in await keel.events.read(second.id)] == [1, 2]


async def test_reading_after_a_sequence_number_returns_only_later_events(keel: Keel) -> None:
    session = await keel.start_flow("a")
    await keel.events.append(session.id, keel.run_id, [NewEvent("note") for _ in range(5)])
    assert [e.seq for e in await keel.events.read(session.id, after=4)] == [5, 6]
    assert [e.seq for e in await keel.events.read(session.id, after=1, limit=2)] == [2, 3]
    assert await keel.events.last_seq(session.id) == 6


async def test_follow_yields_events_as_they_are_appended_and_stops_at_the_end(keel: Keel) -> None:
    session = await keel.start_flow("a")
    seen: list[str] = []

    async def follower() -> None:
        async for event in keel.events.follow(session.id, until=kinds.SESSION_FINAL):
            seen.append(event.type)

    task = asyncio.create_task(follower())
    await asyncio.sleep(0.05)
    assert seen == [kinds.SESSION_CREATED]
    await keel.events.append(session.id, keel.run_id, [NewEvent("one"), NewEvent("two")])
    await asyncio.sleep(0.05)
    assert seen[-2:] == ["one", "two"]
    await keel.events.append(session.id, keel.run_id, [NewEvent(kinds.SESSION_COMPLETED)])
    await asyncio.wait_for(task, 2)
    assert seen[-1] == kinds.SESSION_COMPLETED


async def test_follow_sees_events_written_by_another_process(home: Path) -> None:
    async with await Keel.open(home) as reader, await Keel.open(home) as writer:
        session = await writer.start_flow("a")
        seen: list[int] = []

        async def follower() -> None:
            async for event in reader.events.follow(session.id, poll_interval=0.02):
                seen.append(event.seq)
                if event.seq == 4:
                    return

        task = asyncio.create_task(follower())
        await asyncio.sleep(0.05)
        await writer.events.append(session.id, writer.run_id, [NewEvent("x")] * 3)
        await asyncio.wait_for(task, 2)
        assert seen == [1, 2, 3, 4]
