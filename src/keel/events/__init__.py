"""The event log: the record of every action, in order, per session."""

from __future__ import annotations

from keel.events import kinds
from keel.events.log import EventLog, NewEvent, dump_json, now_us

__all__ = ["EventLog", "NewEvent", "dump_json", "kinds", "now_us"]
