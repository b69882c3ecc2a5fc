"""The session API: HTTP and Server-Sent Events over a Keel store, with workers."""

from __future__ import annotations

from keel.server.app import ServerOptions, create_app

__all__ = ["ServerOptions", "create_app"]
