"""Is any evaluation episode also a training episode? Checked on what the model reads.

An episode is identified by its first prompt, the text the model sees before its first answer: the
task, its rule, its options and the drawn hand or route are all in it, so two episodes the model cannot
tell apart count as one, whatever seeds or option spellings produced them. The study checks every
evaluation episode against the prompts of every training row (pretraining, the SFT initialization, the
SFT branch) and of every RL episode.

A small task can meet an in-distribution evaluation hand in training under another seed (three cards
have a few hundred hands), which is the task, not a leak; the held-out (OOD) evaluations are the ones
that must never occur.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shiftlab.messages import text_of
from shiftlab.policies.oracle import ExpertPolicy
from shiftlab.rollout import iter_episodes
from shiftlab.task import get_preset


def first_prompts(task: str, episodes: Iterable[int], seed: int, evaluation: bool,
                  env: Mapping[str, Any] | None = None, prompt: str | None = None) -> dict[int, str]:
    """The first prompt of each episode index, played as the evaluation (or training) harness plays it,
    in prompt style `prompt` (None: the preset's own)."""
    found = {}
    for trajectory in iter_episodes(get_preset(task), ExpertPolicy(), episodes, seed=seed, evaluation=evaluation,
                                    prompt=prompt, **dict(env or {})):
        if trajectory.turns:
            found[trajectory.episode] = _prompt(trajectory.turns[0].messages)
    return found


def dataset_prompts(path: str | Path) -> set[str]:
    """The prompt before each answer of every row of a saved training dataset."""
    import datasets

    rows = datasets.load_from_disk(str(path))
    prompts = set()
    for messages in rows["messages"]:
        prompts.update(_prompt(messages[:i]) for i, m in enumerate(messages) if m["role"] == "assistant")
    return prompts


def check(eval_prompts: Mapping[str, Mapping[int, str]], training: set[str]) -> dict[str, dict[str, int]]:
    """Per evaluation task: how many of its episodes the training prompts contain."""
    return {task: {"episodes": len(prompts), "found_in_training": sum(p in training for p in prompts.values())}
            for task, prompts in eval_prompts.items()}


def _prompt(messages: Iterable[Mapping[str, Any]]) -> str:
    """The conversation up to an answer, as comparable text (images left out)."""
    return "\n".join(f"{m['role']}: {text_of(m['content'])}" for m in messages)
