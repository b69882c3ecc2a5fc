"""The A2A routes in the session API's app: the agent card (public) and the JSON-RPC
endpoint (bearer token, as every /v1 endpoint), served by the SDK's request handler with
Keel's executor, task store, request context builder and event stream.

The handler needs the open Keel, which the app opens when it starts: it is made on the
first call and closed (its running tasks drained) when the app stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.fastapi_routes import add_a2a_routes_to_fastapi
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keel.gateway.a2a.callers import SCOPE_KEY, CallContextBuilder
from keel.gateway.a2a.card import A2A_PATH, agent_card
from keel.gateway.a2a.event_stream import KeelEventStream
from keel.gateway.a2a.executor import KeelAgentExecutor
from keel.gateway.a2a.sessions import SessionMessages
from keel.gateway.a2a.task_store import KeelTaskStore
from keel.server.state import ServerState, authenticate, server_state

CARD_PATHS = (AGENT_CARD_WELL_KNOWN_PATH, A2A_PATH + AGENT_CARD_WELL_KNOWN_PATH)
"""The card at the SDK's well-known path of the server, and of the A2A endpoint (where a
client given `<server>/a2a` as the agent's URL looks for it)."""

PARKED_S = 300.0
"""How long a task waiting for an approval keeps its place in memory; a reply after that
picks it up from the store."""


class A2AGateway:
    """The SDK's request handler and JSON-RPC dispatcher over the app's open Keel."""

    def __init__(self) -> None:
        self._handler: DefaultRequestHandler | None = None
        self._dispatcher: JsonRpcDispatcher | None = None

    async def dispatcher(self, state: ServerState) -> JsonRpcDispatcher:
        if self._dispatcher is None:
            keel = state.keel
            card = agent_card(await keel.agents.latest())  # what the handler checks calls by
            if self._dispatcher is not None:  # another request made it meanwhile
                return self._dispatcher
            self._handler = DefaultRequestHandler(
                agent_executor=KeelAgentExecutor(keel),
                task_store=KeelTaskStore(keel),
                agent_card=card,
                request_context_builder=SessionMessages(state),
                event_stream=KeelEventStream(keel),
                interrupted_task_timeout=PARKED_S,
            )
            self._dispatcher = JsonRpcDispatcher(
                self._handler, context_builder=CallContextBuilder(), enable_v0_3_compat=True
            )
        return self._dispatcher

    async def aclose(self) -> None:
        if self._handler is not None:
            await self._handler.aclose()
        self._handler = self._dispatcher = None


def install(app: FastAPI) -> None:
    """Add the card and JSON-RPC routes to `app`, and close the handler when it stops."""
    gateway = A2AGateway()

    async def card(request: Request) -> Response:
        """Keel's agent card: its registered agents are the skills."""
        agents = await server_state(request).keel.agents.latest()
        return JSONResponse(agent_card_to_dict(agent_card(agents, str(request.base_url))))

    async def rpc(request: Request) -> Response:
        """A2A JSON-RPC; takes `Authorization: Bearer <token>`."""
        state = server_state(request)
        request.scope[SCOPE_KEY] = await authenticate(request, state)
        dispatcher = await gateway.dispatcher(state)
        return await dispatcher.handle_requests(request)

    add_a2a_routes_to_fastapi(
        app,
        agent_card_routes=[Route(path, card, methods=["GET"]) for path in CARD_PATHS],
        jsonrpc_routes=[Route(A2A_PATH, rpc, methods=["POST"])],
    )
    app.router.lifespan_context = _closing(app.router.lifespan_context, gateway)


Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def _closing(lifespan: Lifespan, gateway: A2AGateway) -> Lifespan:
    """The app's lifespan, which closes `gateway` before the app closes Keel."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as value:
            try:
                yield value
            finally:
                await gateway.aclose()

    return run
