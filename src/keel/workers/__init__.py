"""Workers run queued sessions under leases, in this process or in many others."""

from __future__ import annotations

from keel.workers.worker import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
