"""Keel's agent card: one A2A agent whose skills are the registered agents, reached over
JSON-RPC at `<server>/a2a` with a bearer token. The card is built per request, so agents
registered while the server runs show at once."""

from __future__ import annotations

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from keel import __version__
from keel.types import AgentDefinition

A2A_PATH = "/a2a"
BEARER = "bearer"
TEXT = "text/plain"

DESCRIPTION = (
    "Keel, a durable multi-agent runtime. Send it a goal: it plans the work into tasks, "
    "routes them to its agents (the skills below), runs them under guardrails and answers "
    "with the result. Each A2A task is a Keel session. A task that waits for a person's "
    "approval is input-required: reply 'allow' or 'deny'."
)


def skill(agent: AgentDefinition) -> AgentSkill:
    """An agent as a skill: its name, its role, and the first paragraph of its instructions."""
    summary = " ".join(agent.instructions.strip().split("\n\n")[0].split())
    description = f"{agent.role}: {summary}" if summary else f"a Keel agent with role {agent.role}"
    return AgentSkill(
        id=agent.name,
        name=agent.name,
        description=description,
        tags=list(dict.fromkeys([agent.role, *agent.capabilities])),
        input_modes=[TEXT],
        output_modes=[TEXT],
    )


def agent_card(agents: list[AgentDefinition], base_url: str = "") -> AgentCard:
    """The card for a server at `base_url` (no URL: the card the request handler checks
    capabilities against)."""
    url = base_url.rstrip("/") + A2A_PATH
    return AgentCard(
        name="Keel",
        description=DESCRIPTION,
        version=__version__,
        supported_interfaces=[
            AgentInterface(
                url=url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=version,
            )
            for version in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={
            BEARER: SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer",
                    description="A Keel API token (`keel token create USER`).",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={BEARER: StringList()})],
        default_input_modes=[TEXT],
        default_output_modes=[TEXT],
        skills=[skill(agent) for agent in agents],
    )
