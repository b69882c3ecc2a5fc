"""How an A2A message reaches a session, in the SDK's request context builder (which runs
when the message arrives, before the executor's turn):

- A message that names no task starts a session: its text is the goal, the caller its
  user, and the session's id becomes the task's id. That is why the session is made here,
  where a new task's id is decided, and not later in the executor.
- A message to a task whose session runs (and waits for no approval) is a follow-up
  message: its agents see it in their next model call. It is delivered now, not when the
  executor that follows the session for an earlier message has finished.
- A message to a task that waits for an approval is the answer; the executor gives it.

The request's metadata may carry Keel's options under `keel`, as the session API's body
does (and under the same rules: a workspace only under the server's workspace root, the
server's policy unless an admin names another):

    {"keel": {"agents": ["planner", "coder"], "config": {"scriptedLatencyMs": 200},
              "budget": {"tokensLimit": 50000}}}

The session is created but not queued: the task store queues it once the task is recorded.
"""

from __future__ import annotations

from a2a.helpers import get_message_text
from a2a.server.agent_execution import RequestContext, RequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.types import SendMessageRequest, Task
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict
from pydantic import Field

from keel.errors import KeelError
from keel.gateway.a2a.callers import caller_of
from keel.gateway.a2a.progress import pending_approval
from keel.server.problems import ApiProblem
from keel.server.routes.sessions import api_session_config
from keel.server.schemas import MAX_GOAL
from keel.server.state import ServerState
from keel.types import AgentDefinition, Budget, JsonObject, KeelModel, Session, parse_model

METADATA_KEY = "keel"


class SessionOptions(KeelModel):
    """What a message's metadata may ask of the session it starts (under `keel`)."""

    agents: list[str] | None = Field(
        default=None, max_length=64, description="Registered agents; default: all of them."
    )
    config: JsonObject | None = None
    budget: Budget | None = None


class SessionMessages(RequestContextBuilder):
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def build(
        self,
        context: ServerCallContext,
        params: SendMessageRequest | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        task: Task | None = None,
    ) -> RequestContext:
        if params is not None and task_id is None:
            task_id = (await self._open(params, context)).id
        elif params is not None and task_id is not None:
            await self._follow_up(task_id, params, context)
        return RequestContext(
            call_context=context,
            request=params,
            task_id=task_id,
            context_id=context_id,
            task=task,
        )

    async def _open(self, params: SendMessageRequest, context: ServerCallContext) -> Session:
        caller = caller_of(context)
        if caller is None:
            raise InvalidParamsError(message="this call was not authenticated")
        goal = get_message_text(params.message).strip()
        if not goal:
            raise InvalidParamsError(message="the message has no text: say what to do")
        if len(goal) > MAX_GOAL:
            raise InvalidParamsError(message=f"the message is longer than {MAX_GOAL} characters")
        options = _options(params)
        try:
            agents = await self._agents(options.agents)
            config = api_session_config(self._state, caller, options.config)
            return await self._state.keel.create_session(
                goal, agents, user_id=caller.user_id, config=config, budget=options.budget
            )
        except ApiProblem as problem:
            raise InvalidParamsError(message=problem.detail) from None
        except KeelError as error:
            raise InvalidParamsError(message=str(error)) from None

    async def _follow_up(
        self, task_id: str, params: SendMessageRequest, context: ServerCallContext
    ) -> None:
        """Deliver the text to a running session that waits for no approval (the handler
        has checked that the caller may see the task)."""
        keel = self._state.keel
        text = get_message_text(params.message).strip()
        session = await keel.sessions.get(task_id)
        if not text or session.status.is_final or await pending_approval(keel, task_id):
            return
        user = context.user.user_name
        await keel.message(task_id, text, user_id=user)

    async def _agents(self, names: list[str] | None) -> list[AgentDefinition]:
        registry = self._state.keel.agents
        if names is None:
            return await registry.latest()
        return [await registry.get(name) for name in dict.fromkeys(names)]


def _options(params: SendMessageRequest) -> SessionOptions:
    metadata = MessageToDict(params.metadata) if params.HasField("metadata") else {}
    given = metadata.get(METADATA_KEY) or {}
    try:
        return parse_model(SessionOptions, given, f"metadata.{METADATA_KEY}")
    except KeelError as error:
        raise InvalidParamsError(message=str(error)) from None
