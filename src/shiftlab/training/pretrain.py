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

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shiftlab.task import MAX_EPISODES, SUPPORT, Source, Task, get_preset, get_task, list_presets, list_tasks
from shiftlab.training.config import ConfigError, check_ranges, load_config, output_directory
from shiftlab.training.expert_data import build_dataset
from shiftlab.training.sft import SFTRunConfig, run_sft

# Env seeds of pretraining episodes start here (source i at + 1_000_003 * i), far from the seeds that
# evaluation (0..) and the study's post-training stages use, so no evaluation episode is replayed.
PRETRAIN_DATA_SEED = 40_000_000
SEED_STRIDE = 100_000_000  # seed S of a stage takes the range S * SEED_STRIDE above seed 0's
CACHE_FORMAT = 1  # bump when the pretraining recipe changes in a way the plan does not show


def _tasks(names: Sequence[str] | None) -> list[Task]:
    return list_tasks() if names is None else [get_task(name) for name in names]


def mixture(kind: str = "lm", episodes: int = 200, tasks: Sequence[str] | None = None,
            held_out: Sequence[Mapping[str, Any]] = (), prompt: str | None = None) -> list[Source]:
    """Expert sources of the pretraining mixture, `episodes` per source (each task may take fewer for
    long episodes): every task's text sources, then for a VLM every task's image sources. `tasks`
    (names) default to all registered tasks. A source posing the problem of a `held_out` evaluation
    ({"task": preset, "env": options}; the task decides, `Task.is_held_out`) is left out. `prompt`
    names the prompt style of the tasks that have it (the others keep their presets' own)."""
    if kind not in ("lm", "vlm"):
        raise ValueError(f"kind must be 'lm' or 'vlm', not {kind!r}")
    chosen = _tasks(tasks)
    sources = [s for task in chosen for s in task.pretraining_sources(episodes, images=False)]
    if kind == "vlm":
        sources += [s for task in chosen for s in task.pretraining_sources(episodes, images=True)]
    if prompt is not None:
        sources = [replace(s, prompt=prompt) if get_preset(s.task).owner.has_prompt_style(prompt) else s
                   for s in sources]
    return [s for s in sources if not any(get_task(get_preset(s.task).task).is_held_out(s, h["task"], h.get("env", {}))
                                          for h in held_out)]


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
    size: Literal["tiny", "mini", "small"] = field(default="small", metadata={"help": "model size preset"})
    tokenizer: Literal["bpe", "byte"] = field(default="bpe", metadata={"help": "BPE trained on the tasks' text, or bytes"})
    episodes: int = field(default=100, metadata={"help": "expert episodes per source of the mixture"})
    support: int = field(default=1000, metadata={"help": "supporting question-answer rows"})
    tasks: list[str] | None = field(default=None, metadata={"help": "tasks of the mixture (None: every registered "
                                                                    "task)"})
    prompt: str | None = field(default=None, metadata={
        "help": "prompt style of the mixture and the tokenizer's text, e.g. compact, in the tasks that have it "
                "(None: each preset's own); post-training should use the same"})
    held_out: list[dict] = field(default_factory=list, metadata={
        "help": "evaluations whose problem the base must not see: [{task: PRESET, env: {...}}] (a study fills it "
                "with its OOD evaluations)"})
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 1e-3
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    seed: int = 0

    def validate(self) -> None:
        check_ranges(self, {"episodes": (0, MAX_EPISODES), "support": (0, 1_000_000), "epochs": (0, 1e6),
                            "batch_size": (1, 65_536), "learning_rate": (0, 1), "max_steps": (-1, 10**9)},
                     above=("epochs", "learning_rate"))
        if self.max_steps == 0:
            raise ConfigError("config key 'max_steps' must be positive or -1, not 0")
        presets = {p.name for p in list_presets()}
        for item in self.held_out:
            if not isinstance(item, dict) or item.get("task") not in presets or not isinstance(item.get("env", {}), dict):
                raise ConfigError(f"config key 'held_out' takes {{task: PRESET, env: {{...}}}} items, not {item!r}")
        known = {t.name for t in list_tasks()}
        for name in self.tasks or []:
            if name not in known:
                raise ConfigError(f"config key 'tasks': unknown task {name!r}; known tasks: {', '.join(sorted(known))}")
        if self.prompt is not None and not any(task.has_prompt_style(self.prompt) for task in _tasks(self.tasks)):
            styles = sorted({style for task in _tasks(self.tasks) for style in task.prompts})
            raise ConfigError(f"config key 'prompt': no task of the mixture has the prompt style {self.prompt!r}; "
                              f"styles: {', '.join(styles)}")


def pretraining_plan(config: PretrainConfig) -> dict[str, Any]:
    """What the base will see, as data: its settings, every source of the mixture and the support rows.
    Its hash names the cached run, so a change to either (or to a task's sources) trains a new base."""
    # A setting or source field left at None is left out, so that bases cached before it existed keep their hash.
    settings = {k: v for k, v in asdict(config).items() if k != "output_dir" and not (k == "prompt" and v is None)}
    sources = [{k: v for k, v in asdict(s).items() if not (k == "prompt" and v is None)}
               for s in mixture(config.kind, config.episodes, config.tasks, config.held_out, config.prompt)]
    support = sorted({f"{q.__module__}.{q.__qualname__}" for task in _tasks(config.tasks)
                      for images in ((False, True) if config.kind == "vlm" else (False,))
                      for q in task.support_questions(images=images)})
    return {"format": CACHE_FORMAT, "settings": settings, "sources": sources, "support": support,
            "data_seed": PRETRAIN_DATA_SEED + SEED_STRIDE * config.seed}


def plan_hash(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_root(cache_dir: str | None = None) -> Path:
    """Where cached bases live: `cache_dir`, else $SHIFTLAB_CACHE, else ~/.cache/shiftlab."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("SHIFTLAB_CACHE") or Path.home() / ".cache" / "shiftlab").expanduser()


def cached_pretrain(config: PretrainConfig, cache_dir: str | None = None, **sft_overrides: Any) -> dict[str, Any]:
    """Pretrain once per plan: the run lives in CACHE/pretrain/HASH and later callers with the same plan
    reuse its final model. An interrupted run resumes there. `config.output_dir` is ignored."""
    plan = pretraining_plan(config)
    digest = plan_hash(plan)
    run = cache_root(cache_dir) / "pretrain" / digest
    done = run / "done.json"
    reused = done.is_file()
    if not reused:
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create the pretraining cache {run}: {error.strerror}") from None
        (run / "plan.json").write_text(json.dumps(plan, indent=1, default=str), encoding="utf-8")
        result = pretrain(replace(config, output_dir=str(run)), **sft_overrides)
        record = {"model": str(result.final_model), "flops": result.flops, "steps": result.steps}
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.rename(done)
    record = json.loads(done.read_text(encoding="utf-8"))
    return {**record, "hash": digest, "cache": str(run), "reused": reused, "plan": plan,
            "mixture": str(run / "mixture")}


def pretrain(config: PretrainConfig, **sft_overrides: Any):
    """Build the model, build the mixture, train; returns the SFT result (its final model is the base).

    Batches are drawn at random, not grouped by length: length groups of a mixture are groups of one
    kind of row (support questions, one task, one hand size), and at these learning rates alternating
    such batches kept a small model from ever learning to read its prompt (BENCHMARKS.md)."""
    # Imports torch and transformers, which the CLI must not need to read PretrainConfig.
    from shiftlab.training.base_model import build_base_model

    output = output_directory(config.output_dir)
    initial = output / "initial"
    if not (initial / "config.json").is_file():
        build_base_model(initial, kind=config.kind, size=config.size, seed=config.seed, tokenizer=config.tokenizer,
                         prompt=config.prompt)
    data = output / "mixture"
    if not (data / "dataset_info.json").is_file():
        support = support_rows(config.support, seed=config.seed, images=config.kind == "vlm", tasks=config.tasks)
        dataset = build_dataset(mixture(config.kind, config.episodes, config.tasks, config.held_out, config.prompt), seed=PRETRAIN_DATA_SEED + SEED_STRIDE * config.seed,
                                extra_rows=support)
        dataset.shuffle(seed=config.seed).flatten_indices().save_to_disk(str(data))
    sft = load_config(SFTRunConfig, overrides={
        "model": str(initial), "data": str(data), "output_dir": str(output), "epochs": config.epochs,
        "max_steps": config.max_steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "lr_scheduler": config.lr_scheduler, "seed": config.seed, "warmup_ratio": 0.05, "group_by_length": False, "save_steps": 200, "save_total_limit": 2, **sft_overrides,
    })
    return run_sft(sft)
