"""Who an A2A call acts for. The route authenticates the bearer token as the session API
does and leaves the caller in the request's scope; the call context the SDK hands to the
task store, the request context builder and the executor carries it as its user."""

from __future__ import annotations

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes.common import DefaultServerCallContextBuilder
from starlette.requests import Request

from keel.server.tokens import Caller

SCOPE_KEY = "keel.caller"


class KeelUser(User):
    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.caller.user_id


class CallContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context (headers, extensions), with the authenticated caller."""

    def build_user(self, request: Request) -> User:
        caller = request.scope.get(SCOPE_KEY)
        if isinstance(caller, Caller):
            return KeelUser(caller)
        return super().build_user(request)


def caller_of(context: ServerCallContext) -> Caller | None:
    user = context.user
    return user.caller if isinstance(user, KeelUser) else None


def may_see(caller: Caller | None, owner: str) -> bool:
    """A session belongs to the user who started it; admins see every user's."""
    return caller is not None and (caller.admin or caller.user_id == owner)
