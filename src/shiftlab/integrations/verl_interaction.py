"""Revisions as a verl interaction, for verl 0.4-0.7 (`verl.interactions` was removed in 0.8; on 0.9.1
use `shiftlab.integrations.verl_agent_loop`).

Its `ToolAgentLoop` (agent name `tool_agent`, with `actor_rollout_ref.rollout.multi_turn.
interaction_config_path` set) calls, per episode: `start_interaction(request_id, **interaction_kwargs)`
with the row's `extra_info.interaction_kwargs` (our export puts the episode there beside `name`), then after
each model turn `generate_response(request_id, messages, **interaction_kwargs)` -> (terminate, the next
user message, the turn's score, extra), appends that text as a user message and keeps the scores in
`turn_scores`, which reach `compute_score` in `extra_info` (read off verl 0.7.1's `interactions/base.py`,
`interactions/utils/interaction_registry.py` and `experimental/agent_loop/tool_agent_loop.py`).

The base class is verl's `BaseInteraction` when verl 0.4-0.7 imports (`REAL_BASE` is True), else a
stand-in with its interface (`__init__(config)`, `name`, the four async methods), so the class can be
used and tested without verl. Its feedback is text, so an episode whose next turn shows a new image (V-IRL
street views after a correct move) ends with ValueError: play those with the agent loop. Generic: it
knows the `Task` protocol, not any task.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from shiftlab.integrations.verl import EnvSession, EpisodeSpec
from shiftlab.messages import text_of

try:  # verl 0.4-0.7; 0.8 and later have no interactions, and verl needs ray and torch to import at all
    from verl.interactions.base import BaseInteraction

    REAL_BASE = True
except ImportError:
    REAL_BASE = False

    class BaseInteraction:
        """Stand-in for verl 0.7's `verl.interactions.base.BaseInteraction`: same constructor, name and
        async methods, so `EnvInteraction` behaves the same with or without verl."""

        def __init__(self, config: dict[str, Any]):
            self.config = config
            self.name: str = config.get("name", "interaction_agent")

        async def start_interaction(self, instance_id: str | None = None, **kwargs: Any) -> str:
            return instance_id or str(uuid4())

        async def generate_response(self, instance_id: str, messages: list[dict[str, Any]],
                                    **kwargs: Any) -> tuple[bool, str, float, dict[str, Any]]:
            return False, "", 0.0, {}

        async def calculate_score(self) -> float:
            return 0.0

        async def finalize_interaction(self) -> None:
            return None


class EnvInteraction(BaseInteraction):
    """One environment per live episode (keyed by verl's request id): the model's last answer steps it,
    and the prompt style's next user message (feedback and a request to revise) is the reply."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self._sessions: dict[str, EnvSession] = {}

    async def start_interaction(self, instance_id: str | None = None, **kwargs: Any) -> str:
        instance_id = instance_id or uuid4().hex
        session = EnvSession(EpisodeSpec.from_mapping(kwargs))
        session.reset()
        self._sessions[instance_id] = session
        return instance_id

    async def generate_response(self, instance_id: str, messages: list[dict[str, Any]],
                                **kwargs: Any) -> tuple[bool, str, float, dict[str, Any]]:
        session = self._sessions[instance_id]
        if session.done:
            return True, "", 0.0, session.fields()
        answer = next((m.get("content") for m in reversed(messages) if m.get("role") == "assistant"), "")
        step = session.step(text_of(answer or "", separator="\n"))
        if step.done:
            return True, str(step.info.get("feedback", "")), step.reward, session.fields()
        if any(not isinstance(m["content"], str) and any(p.get("type") == "image" for p in m["content"])
               for m in step.messages):
            raise ValueError(f"episode of {session.spec.preset!r} shows a new image next; an interaction replies "
                             "with text only: use the agent loop (shiftlab.integrations.verl_agent_loop)")
        reply = "\n\n".join(text_of(m["content"], separator="\n") for m in step.messages if m["role"] == "user")
        return False, reply, step.reward, session.fields()

    async def calculate_score(self, instance_id: str | None = None, **kwargs: Any) -> float:
        """The episode's reward so far: the sum of its environment rewards."""
        session = self._sessions.get(instance_id) if instance_id is not None else None
        return float(sum(session.rewards)) if session is not None else 0.0

    async def finalize_interaction(self, instance_id: str | None = None, **kwargs: Any) -> None:
        session = self._sessions.pop(instance_id, None) if instance_id is not None else None
        if session is not None:
            session.close()
