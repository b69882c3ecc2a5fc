"""The SSE decoder reads event streams as the HTML spec says."""

from __future__ import annotations

from keel.client._sse import SseDecoder, SseMessage


def decode(*lines: str) -> tuple[list[SseMessage], SseDecoder]:
    decoder = SseDecoder()
    found = [message for line in lines if (message := decoder.feed(line)) is not None]
    return found, decoder


def test_an_event_is_dispatched_by_its_blank_line_with_its_id_and_type() -> None:
    found, decoder = decode("id: 7", "event: task.created", 'data: {"seq":7}', "")
    assert found == [SseMessage("task.created", '{"seq":7}', "7")]
    assert decoder.last_event_id == "7"


def test_data_lines_join_with_newlines_and_one_leading_space_is_dropped() -> None:
    found, _ = decode("data:first", "data:  second", "data", "")
    assert found == [SseMessage("message", "first\n second\n", "")]


def test_comments_are_heartbeats_and_dispatch_nothing() -> None:
    found, decoder = decode(": keep-alive", "", ": keep-alive", "")
    assert found == []
    assert decoder.comments == 2


def test_retry_sets_the_reconnection_delay_only_when_it_is_a_number() -> None:
    _, decoder = decode("retry: 1000", "")
    assert decoder.retry_ms == 1000
    _, decoder = decode("retry: soon", "")
    assert decoder.retry_ms is None


def test_the_last_event_id_carries_over_to_events_without_one() -> None:
    found, _ = decode("id: 3", "data: a", "", "data: b", "")
    assert [message.id for message in found] == ["3", "3"]


def test_an_event_without_data_is_not_dispatched_and_unknown_fields_are_ignored() -> None:
    found, _ = decode("event: nothing", "", "colour: blue", "data: x", "")
    assert found == [SseMessage("message", "x", "")]


def test_an_id_with_a_null_character_is_ignored() -> None:
    found, _ = decode("id: 1", "id: 2\0", "data: x", "")
    assert found[0].id == "1"
