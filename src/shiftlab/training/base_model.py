"""A freshly built base model for the tasks: `models.builders` with a BPE tokenizer trained on the
registered tasks' expert conversations, so their text takes few tokens."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from shiftlab.messages import text_of
from shiftlab.models.builders import build_model
from shiftlab.policies.oracle import ExpertPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import get_task, list_tasks

TOKENIZERS = ("bpe", "byte")


@functools.lru_cache(maxsize=8)
def _task_corpus(episodes_per_task: int, seed: int, tasks: tuple[str, ...], prompt: str | None) -> tuple[str, ...]:
    texts: list[str] = []
    for task in map(get_task, tasks):
        style = prompt if prompt is not None and task.has_prompt_style(prompt) else None
        for preset in task.presets:
            trajectories = run_episodes(preset, ExpertPolicy(), range(episodes_per_task), seed=seed, evaluation=False,
                                        prompt=style, **task.corpus_options)
            for trajectory in trajectories:
                for turn in trajectory.turns:
                    texts.extend(f"{m['role']}: {text_of(m['content'])}" for m in turn.messages)
                    texts.append(f"assistant: {turn.response}")
    return tuple(texts)


def task_corpus(episodes_per_task: int = 8, seed: int = 0, tasks: Sequence[str] | None = None,
                prompt: str | None = None) -> list[str]:
    """The text of expert conversations on every preset of `tasks` (all registered tasks by default),
    one "ROLE: CONTENT" string per turn as the chat template writes it (images left out): what a
    tokenizer for these tasks should compress. `prompt` names the prompt style (None: each preset's own);
    a task without that style is read in its presets' own."""
    names = tuple(t.name for t in list_tasks()) if tasks is None else tuple(tasks)
    return list(_task_corpus(episodes_per_task, seed, names, prompt))


def build_base_model(path: str | Path, kind: str = "lm", size: str = "tiny", seed: int = 0, tokenizer: str = "bpe",
                     tasks: Sequence[str] | None = None, prompt: str | None = None) -> Path:
    """`build_model` with a BPE tokenizer trained on `task_corpus(seed=seed, tasks=tasks, prompt=prompt)`,
    or with the byte-level tokenizer (`tokenizer="byte"`)."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")
    corpus = task_corpus(seed=seed, tasks=tasks, prompt=prompt) if tokenizer == "bpe" else None
    return build_model(path, kind=kind, size=size, seed=seed, corpus=corpus)
