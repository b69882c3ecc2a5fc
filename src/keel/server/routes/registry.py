"""The agent registry and the server's policy: anyone may read, only admins change."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import yaml
from fastapi import APIRouter, Query

from keel.errors import UnknownAgent
from keel.guardrails import Policy
from keel.server.problems import ApiProblem, responses
from keel.server.schemas import MAX_VERSION, AgentList, PolicyDocument, RegisterAgents
from keel.server.state import AdminDep, CallerDep, State
from keel.types import AgentDefinition

router = APIRouter(prefix="/v1", tags=["registry"])


@router.get("/agents", response_model=AgentList)
async def list_agents(state: State, caller: CallerDep) -> AgentList:
    """Every registered agent at its latest version."""
    return AgentList(agents=await state.keel.agents.latest())


@router.get("/agents/{name}", response_model=AgentDefinition)
async def get_agent(
    name: str,
    state: State,
    caller: CallerDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> AgentDefinition:
    try:
        return await state.keel.agents.get(name, version)
    except UnknownAgent as error:
        raise ApiProblem(404, str(error)) from None


@router.put("/agents", response_model=AgentList, responses=responses(403))
async def register_agents(body: RegisterAgents, state: State, caller: AdminDep) -> AgentList:
    """Register definitions (all or nothing); a changed definition gets a new version,
    sessions keep the versions they started with."""
    return AgentList(agents=await state.keel.agents.register(body.agents))


@router.get("/policy", response_model=PolicyDocument)
async def get_policy(state: State, caller: CallerDep) -> PolicyDocument:
    """The policy every API session runs under (empty: the default policy)."""
    path = state.policy_path
    text = await asyncio.to_thread(path.read_text, "utf-8") if path.exists() else ""
    return PolicyDocument(yaml=text)


def _write_atomically(text: str, state_path: str) -> None:
    temporary = f"{state_path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, state_path)


@router.put("/policy", response_model=PolicyDocument, responses=responses(403))
async def put_policy(body: PolicyDocument, state: State, caller: AdminDep) -> PolicyDocument:
    """Replace the server's policy; a bad document is refused and changes nothing.
    Sessions created from now on run under it."""
    try:
        data = yaml.safe_load(body.yaml)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "invalid syntax"
        raise ApiProblem(422, f"the policy is not valid YAML: {problem}") from None
    Policy.from_data(data, source="the policy document")
    state.policy_path.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_write_atomically, body.yaml, str(state.policy_path))
    return body
