"""Both clients create sessions on a real server and follow their events to the end, each
event once and in order: also when the connection drops mid-stream or the server is killed
and restarted."""

from __future__ import annotations

from collections.abc import Sequence

from tcp_proxy import TcpProxy

from keel.client import AsyncKeelClient, KeelClient
from keel.types import SessionStatus, TraceEvent
from keel_server import KeelServer, long_goal

QUICK = {"scriptedLatencyMs": 30}


def assert_gap_free_to_the_end(events: Sequence[TraceEvent], first: int = 1) -> None:
    assert [event.seq for event in events] == list(range(first, first + len(events)))
    assert events[-1].type == "session.completed"
    assert all(event.type != "session.completed" for event in events[:-1])


def test_the_sync_client_streams_a_session_to_its_end_and_wait_returns_it_done(
    client: KeelClient,
) -> None:
    session = client.create_session(long_goal(3), config=QUICK)
    assert session.goal == long_goal(3)
    assert session.agent_versions.keys() == {"coder", "planner", "reviewer", "tester"}

    events = list(client.stream_events(session.id))
    assert_gap_free_to_the_end(events)
    assert all(event.session_id == session.id for event in events)

    done = client.wait(session.id)
    assert done.status is SessionStatus.DONE
    assert done.final_answer
    assert session.id in [listed.id for listed in client.list_sessions(status="done")]

    page = client.events(session.id, after=len(events) - 2, limit=5)
    assert page.events == events[-2:]
    assert page.last_seq == len(events)
    assert list(client.stream_events(session.id, after=10)) == events[10:]
    (root,) = client.tasks(session.id)
    assert root.task.goal == long_goal(3)
    assert [child.task.assigned_agent for child in root.children] == [
        "coder",
        "coder",
        "coder",
        "reviewer",
    ]


async def test_the_async_client_streams_a_session_to_its_end_and_wait_returns_it_done(
    async_client: AsyncKeelClient,
) -> None:
    session = await async_client.create_session(long_goal(3), config=QUICK)
    events = [event async for event in async_client.stream_events(session.id)]
    assert_gap_free_to_the_end(events)
    assert (await async_client.wait(session.id)).status is SessionStatus.DONE
    later = [event async for event in async_client.stream_events(session.id, after=20)]
    assert later == events[20:]
    assert (await async_client.events(session.id, limit=1)).last_seq == len(events)


def test_wait_returns_a_session_that_has_already_ended_at_once(client: KeelClient) -> None:
    session = client.create_session("Write the parser", config=QUICK)
    first = client.wait(session.id)
    assert client.wait(session.id) == first


def test_a_dropped_connection_is_resumed_with_no_event_missed_or_doubled(
    server: KeelServer,
) -> None:
    with TcpProxy(server.port) as proxy, KeelClient(proxy.url, server.admin_token) as client:
        session = client.create_session(long_goal(12), config=QUICK)
        events: list[TraceEvent] = []
        for event in client.stream_events(session.id):
            events.append(event)
            if event.seq == 8:
                proxy.cut()
        assert proxy.connections >= 2  # the stream came back on a new connection
    assert_gap_free_to_the_end(events)


async def test_the_async_stream_resumes_a_dropped_connection_too(server: KeelServer) -> None:
    with TcpProxy(server.port) as proxy:
        async with AsyncKeelClient(proxy.url, server.admin_token) as client:
            session = await client.create_session(long_goal(12), config=QUICK)
            events: list[TraceEvent] = []
            async for event in client.stream_events(session.id):
                events.append(event)
                if event.seq == 8:
                    proxy.cut()
            assert proxy.connections >= 2
    assert_gap_free_to_the_end(events)


def test_the_stream_follows_a_session_across_a_server_restart(own_server: KeelServer) -> None:
    with KeelClient(own_server.url, own_server.admin_token) as client:
        session = client.create_session(long_goal(8), config={"scriptedLatencyMs": 60})
        events: list[TraceEvent] = []
        for event in client.stream_events(session.id):
            events.append(event)
            if event.seq == 10:
                own_server.kill()
                own_server.start()
        assert client.wait(session.id).status is SessionStatus.DONE
    assert_gap_free_to_the_end(events)
    assert "session.resumed" in [event.type for event in events[10:]]
