"""Real `keel serve` processes for the A2A tests (`keel_server.KeelServer`, with where their
A2A agent answers), and the official A2A SDK's client to talk to them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, SendMessageRequest

from keel_server import KeelServer


class A2AServer(KeelServer):
    """A `keel serve` process, where its A2A agent answers, and its session API at hand."""

    @property
    def a2a_url(self) -> str:
        return f"{self.url}/a2a"

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the session API, as the admin."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert response.is_success, response.text
        return response.json()


@asynccontextmanager
async def a2a_client(
    url: str, token: str | None, *, streaming: bool = True, polling: bool = False
) -> AsyncIterator[Client]:
    """The SDK's client for the agent at `url` (its card resolved from there), sending
    `token` as a bearer token (None: no token). `polling`: a message is answered at once
    with the task just submitted, as a client that polls for the rest wants."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        config = ClientConfig(
            httpx_client=http, streaming=streaming and not polling, polling=polling
        )
        client = await ClientFactory(config).create_from_url(url)
        async with client:
            yield client


def message(text: str, *, task_id: str = "", context_id: str = "") -> Message:
    return Message(
        message_id=str(uuid.uuid4()),
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def request(text: str, *, keel: dict[str, Any] | None = None, **ids: str) -> SendMessageRequest:
    """A message to send; `keel`: Keel's options for the session it starts."""
    sent = SendMessageRequest(message=message(text, **ids))
    if keel is not None:
        sent.metadata.update({"keel": keel})
    return sent
