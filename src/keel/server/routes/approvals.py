"""Approvals: what waits for a person in the caller's sessions, and the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from keel.errors import NotFound
from keel.guardrails.approvals import Approval
from keel.server.problems import ApiProblem, responses
from keel.server.schemas import AnswerApproval, ApprovalList
from keel.server.state import CallerDep, State, owned_session

router = APIRouter(prefix="/v1", tags=["approvals"])


@router.get("/approvals", response_model=ApprovalList, responses=responses(404))
async def list_approvals(
    state: State,
    caller: CallerDep,
    session: Annotated[str | None, Query(max_length=128)] = None,
    every: Annotated[bool, Query(alias="all", description="Answered ones too.")] = False,
) -> ApprovalList:
    if session is not None:
        await owned_session(session, state, caller)
    found = await state.keel.approvals.list(session, pending_only=not every)
    owners: dict[str, bool] = {}
    visible: list[Approval] = []
    for approval in found:
        if approval.session_id not in owners:
            try:
                owner = (await state.keel.sessions.get(approval.session_id)).user_id
            except NotFound:
                owner = ""
            owners[approval.session_id] = caller.admin or owner == caller.user_id
        if owners[approval.session_id]:
            visible.append(approval)
    return ApprovalList(approvals=visible)


async def _owned(approval_id: str, state: State, caller: CallerDep) -> Approval:
    try:
        approval = await state.keel.approvals.get(approval_id)
    except NotFound:
        raise ApiProblem(404, f"no approval '{approval_id}'") from None
    try:
        await owned_session(approval.session_id, state, caller)
    except ApiProblem:
        raise ApiProblem(404, f"no approval '{approval_id}'") from None
    return approval


@router.get("/approvals/{approval_id}", response_model=Approval)
async def get_approval(approval_id: str, state: State, caller: CallerDep) -> Approval:
    return await _owned(approval_id, state, caller)


@router.post("/approvals/{approval_id}", response_model=Approval, responses=responses(409))
async def answer_approval(
    approval_id: str, body: AnswerApproval, state: State, caller: CallerDep
) -> Approval:
    """Allow or deny; the session's worker takes the answer in and goes on."""
    await _owned(approval_id, state, caller)
    return await state.keel.answer(
        approval_id,
        allow=body.allow,
        remember=body.remember,
        note=body.note,
        actor=caller.user_id,
    )
