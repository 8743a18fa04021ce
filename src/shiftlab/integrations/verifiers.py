"""shiftlab's task presets as a `verifiers` (PrimeIntellect) taskset and environment, for its `vf-eval`
and for prime-rl: the optional `verifiers` extra (verifiers 0.4, whose API is `verifiers.v1`).

- `ShiftlabTaskset` yields one task per episode of a preset (`preset`, `episodes`, `seed`): the
  episode's first conversation as the task's prompt and the seed that rebuilds it.
- `ShiftlabEnv` plays an episode turn by turn: each answer steps shiftlab's own environment and the
  verifier's feedback comes back as the next user turn, until the episode ends (like verifiers'
  TextArena env), so the model sees the same revision loop as under `shiftlab eval`.
- `ShiftlabTask`'s rewards replay the model's answers through a fresh environment built from the
  seed, so the score is the verifier's, computed from the trace alone (the same under any env that
  plays the task, a plain single-turn one included), and untrusted text is only ever passed to
  `env.step`, which scores any string.

verifiers finds a taskset by a top-level module name, so this module also answers to `shiftlab_verifiers`
once imported (`load_environment` does that). The player runs verifiers' tool-less `null` harness in a
local subprocess (its chat program is set up with `uv`, which must be on PATH); point `client` at any
OpenAI-compatible server. Where a task's prompt style starts a fresh conversation after a turn, the
player gets that conversation's last user message appended to its own instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import verifiers.v1 as vf
from pydantic import Field

from shiftlab.integrations.episode import EnvSession, EpisodeSpec
from shiftlab.messages import Message
from shiftlab.policies.api import image_data_url
from shiftlab.rollout import bounded_response
from shiftlab.task import get_preset

__all__ = ["ShiftlabEnv", "ShiftlabTaskset"]

TASKSET_ID = "shiftlab_verifiers"


def to_vf_messages(messages: Sequence[Message]) -> list[Any]:
    """shiftlab's chat messages as verifiers' typed ones; images become PNG data URLs."""
    out: list[Any] = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [
                vf.ImageUrlContentPart(image_url=vf.ImageUrlSource(url=image_data_url(part["image"])))
                if part.get("type") == "image" else vf.TextContentPart(text=part.get("text") or "")
                for part in content
            ]
        kind = {"system": vf.SystemMessage, "assistant": vf.AssistantMessage}.get(message["role"], vf.UserMessage)
        out.append(kind(content=content))
    return out


class ShiftlabData(vf.TaskData):
    """One episode: the preset, its environment options and the seed that rebuild it exactly."""

    preset: str
    seed: int
    episode: int
    evaluation: bool = True
    env_options: dict[str, Any] = Field(default_factory=dict)
    prompt_style: str | None = None


class Replay:
    """The verifier's word on a sequence of answers: a fresh environment from the task's seed, stepped
    with each answer (cut as rollouts cut them) until the episode ends."""

    def __init__(self, data: ShiftlabData, answers: Sequence[str]):
        preset = get_preset(data.preset)
        spec = EpisodeSpec(data.preset, data.seed, data.episode, data.evaluation, data.prompt_style)
        session = EnvSession(spec, env=preset.make_env(evaluation=data.evaluation, **data.env_options))
        try:
            session.reset()
            for answer in answers:
                if session.step(answer).done:
                    break
        finally:
            session.close()
        self.reward, self.turns, self.done = float(sum(session.rewards)), len(session.rewards), session.done
        self.success = session.done and bool(session.info.get("success", False))


class ShiftlabTask(vf.Task[ShiftlabData, vf.State, vf.TaskConfig]):
    """An episode of a shiftlab preset; scored by replaying the trace's answers through the verifier.
    verifiers awaits its reward and metric hooks, so they are coroutines."""

    def _replay(self, trace: Any) -> Replay:
        answers = tuple((m.content or "").strip() for m in trace.assistant_messages)
        cached = getattr(self, "_last", None)
        if cached is None or cached[0] != answers:
            cached = (answers, Replay(self.data, answers))
            self._last = cached
        return cached[1]

    @vf.reward
    async def episode_return(self, trace) -> float:
        """The episode's total reward under the task's verifier (what `shiftlab eval` calls return)."""
        return self._replay(trace).reward

    @vf.metric
    async def success(self, trace) -> float:
        return float(self._replay(trace).success)

    @vf.metric
    async def turns(self, trace) -> float:
        return float(self._replay(trace).turns)


class ShiftlabTasksetConfig(vf.TasksetConfig):
    """`--env.taskset.*`: which episodes of which preset (`python -m shiftlab tasks` lists them)."""

    preset: str
    episodes: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)  # episode i resets with seed `seed + i`, as in `shiftlab eval`
    evaluation: bool = True  # the preset's evaluation options (held-out districts); False: training ones
    env_options: dict[str, Any] = Field(default_factory=dict)
    prompt_style: str | None = None


class ShiftlabTaskset(vf.Taskset[ShiftlabTask, ShiftlabTasksetConfig]):
    def load(self) -> Iterator[ShiftlabTask]:
        config = self.config
        preset = get_preset(config.preset)
        style = preset.make_prompt(config.prompt_style)
        env = preset.make_env(evaluation=config.evaluation, **config.env_options)
        try:
            for i in range(config.episodes):
                observation, info = env.reset(seed=config.seed + i, options=preset.owner.reset_options(env, i))
                yield ShiftlabTask(
                    ShiftlabData(
                        id=f"{preset.name}/{config.seed + i}",
                        name=f"{preset.name}#{i}",
                        prompt=to_vf_messages(style.first_turn(observation, info)),
                        preset=preset.name,
                        seed=config.seed + i,
                        episode=i,
                        evaluation=config.evaluation,
                        env_options=dict(config.env_options),
                        prompt_style=config.prompt_style,
                    ),
                    config.task,
                )
        finally:
            env.close()


class ShiftlabEnvConfig(vf.EnvConfig):
    """The one seat, `player`: the model under evaluation, as a plain chat loop (verifiers' tool-less
    `null` harness) in a local subprocess rather than verifiers' default remote sandbox."""

    player: vf.AgentConfig = vf.AgentConfig(harness={"id": "null"}, runtime=vf.SubprocessConfig())


class ShiftlabEnv(vf.Env[ShiftlabEnvConfig]):
    async def run(self, task: ShiftlabTask, agents) -> None:
        data = task.data
        preset = get_preset(data.preset)
        style = preset.make_prompt(data.prompt_style)
        env = preset.make_env(evaluation=data.evaluation, **data.env_options)
        try:
            observation, info = env.reset(seed=data.seed, options=preset.owner.reset_options(env, data.episode))
            messages = style.first_turn(observation, info)
            async with agents.player.interaction(task) as interaction:
                segment = await interaction.turn()  # the task's prompt opens the exchange
                while not segment.terminated:
                    text, _ = bounded_response(segment.last_reply)
                    observation, _, terminated, truncated, info = env.step(text)
                    if terminated or truncated:
                        break
                    messages = style.next_turn(messages, text, observation, info)
                    segment = await interaction.turn(to_vf_messages(messages[-1:]))
        finally:
            env.close()


def load_environment(preset: str, *, episodes: int = 100, seed: int = 0,
                     options: Mapping[str, Any] | None = None, **taskset: Any) -> ShiftlabEnv:
    """A `ShiftlabEnv` over `episodes` episodes of `preset`; `options` go to `ShiftlabEnvConfig`
    (`player`, `timeout`, ...), `taskset` to `ShiftlabTasksetConfig` (`evaluation`, `env_options`, ...)."""
    sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])
    config = ShiftlabEnvConfig.model_validate({
        **dict(options or {}),
        "taskset": {"id": TASKSET_ID, "preset": preset, "episodes": episodes, "seed": seed, **taskset},
    })
    return ShiftlabEnv(config)


sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])
