"""Keel as an A2A agent, on the official A2A SDK (`keel[a2a]`), in the session API's app.

    GET  /.well-known/agent-card.json       the agent card (public): Keel's agents as skills
    GET  /a2a/.well-known/agent-card.json   the same card, for clients given the A2A URL
    POST /a2a                               JSON-RPC: SendMessage, SendStreamingMessage (SSE),
                                            GetTask, ListTasks, CancelTask, SubscribeToTask
                                            (A2A 1.0; 0.3 clients' message/send, message/stream,
                                            tasks/get, tasks/cancel, tasks/resubscribe too)

Every call to /a2a takes the session API's `Authorization: Bearer <token>`. A Keel session
is the A2A task: the task id is the session id, its state is the session's status, and its
answer is the session's final answer. The modules, one idea each:

- `server`: the routes, their authentication, and the SDK's request handler;
- `card`: the agent card;
- `sessions`: how a message reaches a session: it starts one, or follows one up;
- `task_store`: the SDK's task store over Keel's sessions;
- `progress`: a session's events as A2A status and artifact updates;
- `executor`: the SDK's agent executor, which follows a session for a request;
- `event_stream`: the SDK's event stream over Keel's event log, for subscribers a process
  that does not follow the session itself serves (after a restart, on another node).

This package imports the SDK only when `mount_a2a` finds it installed.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

log = logging.getLogger("keel.gateway.a2a")

__all__ = ["mount_a2a"]


def mount_a2a(app: FastAPI) -> bool:
    """Add the A2A routes to the session API's `app` (and close the A2A handler when the app
    stops). Without the A2A SDK installed this adds nothing and returns False."""
    try:
        from keel.gateway.a2a.server import install
    except ImportError as error:
        if not (error.name or "").startswith(("a2a", "sse_starlette")):
            raise
        log.info("A2A is off: the A2A SDK is not installed (pip install 'keel[a2a]')")
        return False
    install(app)
    return True
