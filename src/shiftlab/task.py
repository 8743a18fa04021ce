"""What a task is, and the one registry of tasks and their presets.

A task (GeneralPoints, V-IRL, ...) is one package that owns everything about it: its environment,
verifier, expert, prompts, the info keys its trajectories keep, its metrics, and the data it adds to
a base model's pretraining and tokenizer. It subclasses `Task` and calls `register_task` once. The
generic layers (rollout, evaluation, training, models, the study) reach a task only through this
module: they ask for a preset by name and call the methods below, and they name no task, info key
or environment id.

The environment contract every task keeps (gymnasium's, plus four info keys): `reset(seed=...)`
alone fixes the episode; `step(text)` scores any string without raising; `info["attempts_left"]`
(an int) is set at reset, `info["feedback"]` and `info["outcome"]` after each step, and
`info["success"]` when the episode ends.

Presets are named `<group>` for a task's in-distribution setting and `<group>/<shift>` for its
shifted variants, so `gp-l/rule-ood` is GP-L under the shifted face-card rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from shiftlab.messages import Message

SUPPORT = "support"  # the task name of pretraining facts that belong to no preset


class PromptStyle(Protocol):
    """How observations and feedback become chat messages: the first conversation, and the next."""

    def first_turn(self, observation: Any, info: dict) -> list[Message]: ...

    def next_turn(self, messages: list[Message], response: str, observation: Any, info: dict) -> list[Message]: ...


# A pretraining fact: rng -> (question, answer, image or None).
SupportQuestion = Callable[[np.random.Generator], tuple[str, str, Any]]


# Training data is built in memory: a million episodes of a preset is more than any SFT run here reads,
# and far less than would exhaust a machine. Revisions past a handful teach nothing the first ones do not.
MAX_EPISODES = 1_000_000
MAX_REVISIONS = 20


@dataclass(frozen=True)
class Source:
    """Expert episodes of one preset (`task`, its name) for training data, some environment options
    changed (another target, a city, an action space), and `revisions` wrong answers before each
    expert answer, written in prompt style `prompt` (None: the preset's own). Checked when made: the
    preset and style exist and the counts are in range."""

    task: str
    episodes: int
    env: Mapping[str, Any] = field(default_factory=dict)
    revisions: int = 0
    prompt: str | None = None

    def __post_init__(self):
        get_preset(self.task).make_prompt(self.prompt)  # raises KeyError naming the known presets or styles
        if not 0 <= self.episodes <= MAX_EPISODES:
            raise ValueError(f"episodes must be from 0 to {MAX_EPISODES:,} per task, not {self.episodes}")
        if not 0 <= self.revisions <= MAX_REVISIONS:
            raise ValueError(f"revisions must be from 0 to {MAX_REVISIONS}, not {self.revisions}")


@dataclass(frozen=True)
class TaskPreset:
    """A named setting of a task: environment options, prompt style and the shift it stands for."""

    name: str
    task: str  # the registered name of the task that owns the preset
    env_kwargs: Mapping[str, Any]
    shift: str  # "id" for the in-distribution setting, else the kind of shift ("rule", "visual", ...)
    description: str
    prompt: str = "default"
    # Options that evaluation uses instead of the training ones (held-out districts for V-IRL).
    evaluation_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.shift or not self.shift.isidentifier():
            raise ValueError(f"shift must be a word ('id' in distribution), not {self.shift!r}")
        object.__setattr__(self, "env_kwargs", MappingProxyType(dict(self.env_kwargs)))
        object.__setattr__(self, "evaluation_overrides", MappingProxyType(dict(self.evaluation_overrides)))

    @property
    def group(self) -> str:
        """The setting this preset shifts: 'gp-vl' for 'gp-vl/visual-ood'."""
        return self.name.split("/", 1)[0]

    @property
    def is_ood(self) -> bool:
        return self.shift != "id"

    @property
    def owner(self) -> Task:
        return get_task(self.task)

    def make_env(self, *, evaluation: bool = False, **overrides: Any) -> gym.Env:
        """A fresh environment; `evaluation=True` applies the evaluation options (e.g. held-out
        districts), and `overrides` replace any option (e.g. resolution=224)."""
        kwargs = {**self.env_kwargs, **(self.evaluation_overrides if evaluation else {}), **overrides}
        return self.owner.make_env(**kwargs)

    def make_prompt(self, style: str | None = None) -> PromptStyle:
        """The prompt style `style` of the preset's task, or the preset's own when None."""
        return self.owner.prompt(self.prompt if style is None else style)

    def expert_answer(self, info: Mapping) -> str:
        """The task expert's answer for the state described by an env `info` dict."""
        return self.owner.expert_answer(info)

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        """A well-formed random answer: the baseline that knows the format but not the task."""
        return self.owner.random_answer(info, rng)


class Task:
    """Everything the generic layers need of a task. Subclasses set the class attributes and
    implement `make_env`, `prompt`, `expert_answer` and `random_answer`; the rest has defaults that
    suit a one-point, text-only task."""

    name: ClassVar[str]
    presets: ClassVar[Sequence[TaskPreset]] = ()
    # The JSON key of the final answer: RL's PPO weighs the tokens before it (reasoning) apart.
    answer_key: ClassVar[str | None] = None
    # Info keys a trajectory keeps of every turn, beyond what the rollout records itself.
    turn_keys: ClassVar[tuple[str, ...]] = ("outcome", "feedback", "attempts_left")
    # Metrics of `metrics()` a report may put first, beside the generic success rate and mean reward.
    report_metrics: ClassVar[tuple[str, ...]] = ()
    # Options that make an environment cheap for text-only data (the smallest images, training
    # splits only): used for the tokenizer corpus.
    corpus_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    # A gymnasium id and the environment class behind it: the default `make_env` and `env_options`.
    env_id: ClassVar[str | None] = None
    env_class: ClassVar[type | None] = None
    # Prompt styles by name; "default" is the one presets use unless they name another.
    prompts: ClassVar[Mapping[str, PromptStyle]] = MappingProxyType({})
    # Environment options that make two episode distributions the same problem (the rule, the
    # target, the hand size; the action space and the district): a pretraining source that agrees with
    # a held-out evaluation on all of them is left out of the mixture. Empty: compare every option.
    problem_keys: ClassVar[tuple[str, ...]] = ()

    def make_env(self, **options: Any) -> gym.Env:
        if self.env_id is None:
            raise NotImplementedError(f"task {self.name!r} sets no env_id; override make_env")
        return gym.make(self.env_id, **options)

    def env_options(self) -> set[str]:
        """The keyword options `make_env` takes; unknown ones are refused before anything runs."""
        if self.env_class is None:
            raise NotImplementedError(f"task {self.name!r} sets no env_class; override env_options")
        return constructor_options(self.env_class)

    def prompt(self, style: str = "default") -> PromptStyle:
        try:
            return self.prompts[style]
        except KeyError:
            known = ", ".join(self.prompts) or "none"
            raise KeyError(f"unknown prompt style {style!r} of task {self.name!r}; known: {known}") from None

    def has_prompt_style(self, style: str) -> bool:
        try:
            self.prompt(style)
        except KeyError:
            return False
        return True

    def expert_answer(self, info: Mapping) -> str:
        raise NotImplementedError

    def random_answer(self, info: Mapping, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def decision_point(self, info: Mapping) -> int:
        """Which decision of the episode the next answer makes (V-IRL's step along the route): turns at
        the same point are attempts at one decision. One-point tasks answer 0."""
        return 0

    def reset_options(self, env: gym.Env, episode: int) -> dict | None:
        """`reset` options for episode `episode`, for tasks that walk a fixed list in order."""
        return None

    def metrics(self, records: Sequence[dict], attempts: int) -> dict[str, Any]:
        """Figures of this task beyond the generic ones, from trajectory summaries (each turn holds
        `point`, `reward` and the `turn_keys`; `start` is the info at reset)."""
        return {}

    def pretraining_sources(self, episodes: int, images: bool) -> list[Source]:
        """Expert episodes for a base model's pretraining mixture: the text presets' sources, or with
        `images` the image presets' (a VLM's mixture has both)."""
        return []

    def support_questions(self, images: bool) -> list[SupportQuestion]:
        """Short facts the task builds on, for pretraining: without `images` the text facts, with it
        those that show a picture."""
        return []

    def resolved_options(self, preset: str, env: Mapping[str, Any], evaluation: bool = False) -> dict[str, Any]:
        """Every option of an environment as it would be built: the constructor's defaults, the
        preset's options (and its evaluation overrides), then `env`."""
        chosen = get_preset(preset)
        defaults = {}
        if self.env_class is not None:
            defaults = {p.name: p.default for p in inspect.signature(self.env_class).parameters.values()
                        if p.default is not inspect.Parameter.empty}
        extra = chosen.evaluation_overrides if evaluation else {}
        return {**defaults, **chosen.env_kwargs, **extra, **env}

    def is_held_out(self, source: Source, evaluation: str, env: Mapping[str, Any]) -> bool:
        """Whether a pretraining source poses the problem of the evaluation preset `evaluation` (run
        with `env`): then the base must not see it."""
        if get_preset(evaluation).task != self.name or get_preset(source.task).task != self.name:
            return False
        seen = self.resolved_options(source.task, source.env)
        held = self.resolved_options(evaluation, env, evaluation=True)
        keys = self.problem_keys or tuple(set(seen) | set(held))
        return all(seen.get(k) == held.get(k) for k in keys)


def constructor_options(factory: Callable[..., Any]) -> set[str]:
    """The keyword options a class or function takes (an environment's constructor)."""
    return {p.name for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self", "render_mode"}


_TASKS: dict[str, Task] = {}
_PRESETS: dict[str, TaskPreset] = {}


def register_task(task: Task) -> Task:
    """Add a task and its presets. Raises ValueError when a name is taken, so two packages never
    shadow each other silently."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    names = [p.name for p in task.presets]
    for preset in task.presets:
        if preset.task != task.name:
            raise ValueError(f"preset {preset.name!r} belongs to task {preset.task!r}, not {task.name!r}")
        if preset.name in _PRESETS or names.count(preset.name) > 1:
            raise ValueError(f"task preset {preset.name!r} is already registered")
    _TASKS[task.name] = task
    _PRESETS.update({p.name: p for p in task.presets})
    return task


def unregister_task(name: str) -> None:
    """Remove a task and its presets (tests and notebooks that register a task for a while)."""
    task = _TASKS.pop(name)
    for preset in task.presets:
        _PRESETS.pop(preset.name, None)


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}") from None


def list_tasks() -> list[Task]:
    return list(_TASKS.values())


def get_preset(name: str) -> TaskPreset:
    try:
        return _PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(_PRESETS)}") from None


def list_presets() -> list[TaskPreset]:
    return list(_PRESETS.values())


def ood_presets(name: str) -> list[TaskPreset]:
    """The shifted variants of the setting `name` belongs to."""
    group = get_preset(name).group
    return [p for p in _PRESETS.values() if p.group == group and p.is_ood]


def report_metrics() -> tuple[str, ...]:
    """Every metric a report can lead with: the generic two, then each task's own."""
    names = ["success_rate", "mean_reward"]
    for task in _TASKS.values():
        names += [m for m in task.report_metrics if m not in names]
    return tuple(names)


def check_prompt_style(tasks: Sequence[str], style: str | None) -> None:
    """Raise ValueError unless every preset's task has the prompt style `style` (None: the preset's own)."""
    if style is None:
        return
    if not isinstance(style, str):
        raise ValueError(f"a prompt style is a name, not {style!r}")
    for name in tasks:
        owner = get_preset(name).owner
        if not owner.has_prompt_style(style):
            raise ValueError(f"task {name!r} has no prompt style {style!r}; styles: "
                             f"{', '.join(owner.prompts) or 'none'}")


def check_env_options(tasks: Sequence[str], options: Mapping[str, Any]) -> None:
    """Raise ValueError unless `options` make a valid environment for every preset (built and reset
    once) and leave each preset's own settings alone: options that redefine a preset (e.g. the
    face-card rule) would erase its shift."""
    for name in tasks:
        preset = get_preset(name)
        known = preset.owner.env_options()
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown environment option {unknown[0]!r} for task {name!r}; options: "
                             f"{', '.join(sorted(known - set(preset.env_kwargs)))}")
        taken = sorted(set(options) & set(preset.env_kwargs))
        if taken:
            raise ValueError(f"option {taken[0]!r} is set by task {name!r} itself (it defines the task)")
        try:
            env = preset.make_env(evaluation=True, **options)
            try:
                env.reset(seed=0)  # some misfits only show when dealing (a target no hand reaches)
            finally:
                env.close()
        except (TypeError, ValueError) as error:
            raise ValueError(f"options do not fit task {name!r}: {str(error).splitlines()[0]}") from None
