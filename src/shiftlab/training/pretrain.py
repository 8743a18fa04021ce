"""Base pretraining: make a small model stand in for a foundation model before post-training.

The paper post-trains Llama-3.2-Vision, a model that has seen the world broadly. A freshly built
model has seen nothing, so this stage trains it on a broad mixture: expert episodes of every task
variant, as each task chooses them (`Task.pretraining_sources`: its rules, targets, action spaces and
places, some with revision turns), and the short facts each task builds on (`Task.support_questions`:
arithmetic, rules in words, and for VLMs, reading a picture). The post-training study then starts
from it: SFT and RL on one variant, evaluation on the others.

Tasks build their sources from training data only (training districts, training seeds); evaluation
uses held-out ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shiftlab.task import MAX_EPISODES, SUPPORT, Source, Task, get_task, list_tasks
from shiftlab.training.config import ConfigError, check_ranges, load_config, output_directory
from shiftlab.training.expert_data import build_dataset
from shiftlab.training.sft import SFTRunConfig, run_sft


def _tasks(names: Sequence[str] | None) -> list[Task]:
    return list_tasks() if names is None else [get_task(name) for name in names]


def mixture(kind: str = "lm", episodes: int = 200, tasks: Sequence[str] | None = None) -> list[Source]:
    """Expert sources of the pretraining mixture, `episodes` per source (each task may take fewer for
    long episodes): every task's text sources, then for a VLM every task's image sources. `tasks`
    (names) default to all registered tasks."""
    if kind not in ("lm", "vlm"):
        raise ValueError(f"kind must be 'lm' or 'vlm', not {kind!r}")
    chosen = _tasks(tasks)
    sources = [s for task in chosen for s in task.pretraining_sources(episodes, images=False)]
    if kind == "vlm":
        sources += [s for task in chosen for s in task.pretraining_sources(episodes, images=True)]
    return sources


def support_rows(count: int, seed: int = 0, images: bool = False,
                 tasks: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """Short question-answer facts the tasks build on, taking each task's questions in turn; with
    `images`, also the questions that show a picture."""
    rng = np.random.default_rng([seed, 7919])
    chosen = _tasks(tasks)
    makers = [q for task in chosen for q in task.support_questions(images=False)]
    if images:
        makers += [q for task in chosen for q in task.support_questions(images=True)]
    if not makers:
        return
    for i in range(count):
        question, answer, picture = makers[i % len(makers)](rng)
        content: Any = question
        if picture is not None:
            content = [{"type": "image", "image": picture}, {"type": "text", "text": question}]
        yield {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": answer}],
               "task": SUPPORT, "seed": seed, "episode": i, "point": 0, "revisions": 0, "env": "{}"}


@dataclass
class PretrainConfig:
    """What `shiftlab pretrain` builds and how long it trains; the rest is an SFT run."""

    output_dir: str = field(metadata={"help": "the run; the base model lands in OUTPUT_DIR/final"})
    kind: Literal["lm", "vlm"] = field(default="lm", metadata={"help": "text LM or LLaVA-style VLM"})
    size: Literal["tiny", "small"] = field(default="small", metadata={"help": "model size preset"})
    tokenizer: Literal["bpe", "byte"] = field(default="bpe", metadata={"help": "BPE trained on the tasks' text, or bytes"})
    episodes: int = field(default=100, metadata={"help": "expert episodes per source of the mixture"})
    support: int = field(default=1000, metadata={"help": "supporting question-answer rows"})
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        check_ranges(self, {"episodes": (0, MAX_EPISODES), "support": (0, 1_000_000), "epochs": (0, 1e6),
                            "batch_size": (1, 65_536), "learning_rate": (0, 1), "max_steps": (-1, 10**9)},
                     above=("epochs", "learning_rate"))
        if self.max_steps == 0:
            raise ConfigError("config key 'max_steps' must be positive or -1, not 0")


def pretrain(config: PretrainConfig, **sft_overrides: Any):
    """Build the model, build the mixture, train; returns the SFT result (its final model is the base)."""
    # Imports torch and transformers, which the CLI must not need to read PretrainConfig.
    from shiftlab.training.base_model import build_base_model

    output = output_directory(config.output_dir)
    initial = output / "initial"
    if not (initial / "config.json").is_file():
        build_base_model(initial, kind=config.kind, size=config.size, seed=config.seed, tokenizer=config.tokenizer)
    data = output / "mixture"
    if not (data / "dataset_info.json").is_file():
        support = support_rows(config.support, seed=config.seed, images=config.kind == "vlm")
        dataset = build_dataset(mixture(config.kind, config.episodes), seed=config.seed, extra_rows=support)
        dataset.shuffle(seed=config.seed).flatten_indices().save_to_disk(str(data))
    sft = load_config(SFTRunConfig, overrides={
        "model": str(initial), "data": str(data), "output_dir": str(output), "epochs": config.epochs,
        "max_steps": config.max_steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "seed": config.seed, "warmup_ratio": 0.05, "group_by_length": config.kind == "lm", "save_steps": 200, "save_total_limit": 2, **sft_overrides,
    })
    return run_sft(sft)
