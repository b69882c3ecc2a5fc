"""A remote A2A agent as a Keel model: an agent whose model is `a2a:<agent URL>` hands its
task to that agent, with the official A2A SDK's client (`keel[a2a]`).

    name: scout
    role: researcher
    model: a2a:http://other-host:8420/a2a

Each call sends the task (the conversation's last user message) as a new A2A task to the
agent found at the URL (its card at `<URL>/.well-known/agent-card.json`), streams the
answer's text as it arrives, and returns it as the assistant's reply; the remote agent uses
its own tools, so the reply never calls Keel's. The bearer token comes from the variable
the session names (`config.providers.a2a.apiKeyEnv`), else `KEEL_A2A_TOKEN`; none is sent
when neither is set. A call that is repeated (a resumed session) sends the task again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from a2a.client import (
    A2AClientError,
    A2AClientTimeoutError,
    AgentCardResolutionError,
    ClientConfig,
    ClientFactory,
)
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import Message as A2AMessage
from a2a.types import Part, Role, SendMessageRequest, StreamResponse, TaskState, TaskStatus
from a2a.utils.errors import A2AError

from keel.errors import ModelConfigError, ModelError, ModelRefused, ModelUnavailable
from keel.models.base import DeltaSink, Message, Model, ModelResponse, ToolSpec, Usage
from keel.models.http_wire import RETRYABLE_STATUSES
from keel.models.scripted import count_tokens
from keel.models.settings import ModelSettings, env_value

PROVIDER = "a2a"
TOKEN_VARIABLES = ("KEEL_A2A_TOKEN",)


def create(name: str, settings: ModelSettings) -> RemoteAgentModel:
    return RemoteAgentModel(name, token=_token(settings), timeout_s=settings.timeout_s)


def _token(settings: ModelSettings) -> str | None:
    chosen = settings.provider(PROVIDER).api_key_env
    if chosen is None:
        return env_value(*TOKEN_VARIABLES)
    token = env_value(chosen)
    if token is None:
        raise ModelConfigError(f"no token for the remote A2A agents: set {chosen}")
    return token


class RemoteAgentModel(Model):
    def __init__(self, url: str, *, token: str | None, timeout_s: float) -> None:
        self.name = url
        self.url = url
        self._token = token
        self._timeout_s = timeout_s

    @property
    def _where(self) -> str:
        return f"the remote A2A agent at {self.url}"

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelResponse:
        task = _task_text(messages)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        reply = _Reply()
        try:
            # A client per call, as the HTTP providers do: a Model has no close().
            async with httpx.AsyncClient(headers=headers, timeout=self._timeout_s) as http:
                factory = ClientFactory(ClientConfig(httpx_client=http))
                client = await factory.create_from_url(self.url)
                async with client:
                    async for response in client.send_message(_request(task)):
                        reply.add(response, on_delta)
        except AgentCardResolutionError as error:
            raise self._unreachable(error, error.status_code) from error
        except A2AClientTimeoutError as error:
            raise ModelUnavailable(
                f"{self._where} did not answer in time", kind="timeout"
            ) from error
        except A2AClientError as error:
            cause = error.__cause__
            status = (
                cause.response.status_code if isinstance(cause, httpx.HTTPStatusError) else None
            )
            raise self._unreachable(error, status) from error
        except A2AError as error:
            raise ModelRefused(f"{self._where} refused the task: {error.message}") from error
        text = self._answer(reply)
        if on_delta is not None and not reply.streamed and text:
            on_delta(text)
        usage = Usage(input_tokens=count_tokens(task), output_tokens=count_tokens(text))
        return ModelResponse(
            message=Message(role="assistant", content=text),
            usage=usage,
            model=f"{PROVIDER}:{self.url}",
            finish_reason="stop",
        )

    def _unreachable(self, error: A2AClientError, status: int | None) -> ModelError:
        if status is None:
            return ModelUnavailable(f"{self._where} cannot be reached: {error}", kind="connection")
        if status in RETRYABLE_STATUSES or status >= 500:
            return ModelUnavailable(f"{self._where} is unavailable (HTTP {status})")
        hint = ""
        if status in (401, 403):
            variables = " or ".join(TOKEN_VARIABLES)
            hint = f"; check its token ({variables}, or config.providers.a2a.apiKeyEnv)"
        return ModelRefused(f"{self._where} refused the request (HTTP {status}){hint}")

    def _answer(self, reply: _Reply) -> str:
        if reply.message is not None:
            return reply.message
        if reply.state == TaskState.TASK_STATE_COMPLETED:
            return reply.text() or reply.status_text
        said = f": {reply.status_text}" if reply.status_text else ""
        if reply.state in (TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED):
            raise ModelRefused(f"{self._where} failed the task{said}")
        if reply.state == TaskState.TASK_STATE_CANCELED:
            raise ModelError(f"{self._where} cancelled the task{said}")
        if reply.state in (TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED):
            raise ModelRefused(f"{self._where} asks for input Keel cannot give it{said}")
        raise ModelUnavailable(f"{self._where} stopped answering before the task ended")


def _task_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    raise ModelError("a remote A2A agent needs a task: the conversation has no user message")


def _request(text: str) -> SendMessageRequest:
    message = A2AMessage(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])
    return SendMessageRequest(message=message)


@dataclass
class _Reply:
    """What the remote agent has said so far: a direct message, or a task's state, status
    message and artifacts (by id, in the order they came)."""

    message: str | None = None
    state: int = TaskState.TASK_STATE_UNSPECIFIED
    status_text: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)
    streamed: bool = False

    def add(self, response: StreamResponse, on_delta: DeltaSink | None) -> None:
        if response.HasField("message"):
            self.message = get_message_text(response.message)
        elif response.HasField("task"):
            task = response.task
            self._status(task.status)
            for artifact in task.artifacts:
                self.artifacts[artifact.artifact_id] = get_artifact_text(artifact)
        elif response.HasField("status_update"):
            update = response.status_update
            self._status(update.status)
        elif response.HasField("artifact_update"):
            update = response.artifact_update
            piece = get_artifact_text(update.artifact)
            before = self.artifacts.get(update.artifact.artifact_id, "") if update.append else ""
            self.artifacts[update.artifact.artifact_id] = before + piece
            if on_delta is not None and piece:
                self.streamed = True
                on_delta(piece)

    def _status(self, status: TaskStatus) -> None:
        self.state = status.state
        if status.HasField("message"):
            self.status_text = get_message_text(status.message)

    def text(self) -> str:
        return "\n\n".join(text for text in self.artifacts.values() if text)
