"""Supervised fine-tuning on expert conversations, through TRL's `SFTTrainer`.

Reads top to bottom: the config, the data (a saved dataset, or expert episodes made on the spot and
saved with the run), the model (any Hugging Face checkpoint, text or vision-language, through the
Auto classes), then TRL does the training. This file adds what a study needs around it:
compute counted as 6*N*D with every log line and checkpoint, a JSONL log, resuming from the last
checkpoint at the same step and data position, and a final model that reloads like any other
(LoRA adapters merged in).

Under `accelerate launch` (or torchrun) TRL trains data parallel; `batch_size` stays the number of
sequences per forward pass summed over the processes, so a run keeps its global batch (and its
results, up to floating point) on any number of processes. The main process alone writes the run's
own files (config, expert data, JSONL log, compute.json, final model); TRL counts tokens over all
processes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shiftlab.task import (
    MAX_EPISODES,
    MAX_REVISIONS,
    Source,
    check_env_options,
    check_prompt_style,
    list_presets,
)
from shiftlab.training.assistant_masks import template_marks_assistant, tokenize_with_masks
from shiftlab.training.compute import flop_parameters, read_compute, training_flops, write_compute
from shiftlab.training.config import (
    ConfigError,
    check_checkpoint_weights,
    check_lora_ranges,
    check_ranges,
    output_directory,
    resume_point,
    to_yaml,
)
from shiftlab.training.expert_data import build_dataset
from shiftlab.training.run_log import JsonlLog

RESUME_KEYS = ("model", "data", "tasks", "env", "prompt", "episodes", "revisions", "data_seed", "replay", "replay_share", "seed",
               "batch_size", "grad_accum", "loss", "group_by_length", "lora", "lora_r", "lora_alpha", "lora_targets",
               "freeze_vision", "max_length")


@dataclass
class SFTRunConfig:
    model: str = field(metadata={"help": "model directory or hub id (a shiftlab-built base model or a real one)"})
    output_dir: str = field(default="runs/sft", metadata={"help": "checkpoints, logs and the final model"})
    data: str | None = field(default=None, metadata={"help": "dataset directory written by `shiftlab sft-data`"})
    tasks: list[str] = field(default_factory=list, metadata={"help": "or: task presets to make expert data from"})
    env: dict = field(default_factory=dict, metadata={"help": "environment options over the tasks' (with `tasks`)"})
    episodes: int = field(default=1000, metadata={"help": "expert episodes per task (with `tasks`)"})
    revisions: int = field(default=0, metadata={"help": "wrong answers before each expert answer (with `tasks`)"})
    prompt: str | None = field(default=None, metadata={
        "help": "prompt style of the expert data (with `tasks`), e.g. compact; None: each preset's own"})
    data_seed: int = field(default=0, metadata={"help": "seed of the expert episodes (with `tasks`)"})
    replay: str | None = field(default=None, metadata={
        "help": "a saved dataset (such as a base's pretraining mixture) whose rows are mixed in, against forgetting"})
    replay_share: float = field(default=0.0, metadata={"help": "share of the training rows drawn from `replay`"})
    loss: Literal["assistant", "completion"] = field(
        default="assistant", metadata={"help": "loss on every assistant turn, or on the last answer only"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data (unless max_steps is set)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1: as many as `epochs` takes"})
    batch_size: int = field(default=8, metadata={
        "help": "sequences per forward pass over all processes (each takes batch_size / processes)"})
    grad_accum: int = field(default=1, metadata={"help": "forward passes per optimizer step"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate"})
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps warming up"})
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int | None = field(default=None, metadata={"help": "truncate longer sequences (None: keep all)"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (merged into the final model)"})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"],
                                    metadata={"help": "module names LoRA adapts"})
    freeze_vision: bool = field(default=False, metadata={"help": "keep a VLM's vision tower fixed"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "auto: bf16 on a GPU that has it, else fp32"})
    gradient_checkpointing: bool = False
    group_by_length: bool = field(
        default=False, metadata={"help": "batch rows of similar length (less padding; text data only)"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N optimizer steps"})
    save_total_limit: int | None = field(default=None, metadata={"help": "keep only the newest N checkpoints"})
    logging_steps: int = 10
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"],
                                 metadata={"help": "tensorboard, wandb, or none (JSONL is always written)"})
    seed: int = field(default=0, metadata={"help": "initialisation and data order"})
    resume: str = field(default="auto", metadata={"help": "auto (the last checkpoint, if any), never, or a path"})

    def validate(self) -> None:
        if (self.data is None) == (not self.tasks):
            raise ConfigError("give either `data` (a dataset directory) or `tasks` (presets to make expert data from)")
        if self.tasks:
            known = {p.name for p in list_presets()}
            for task in self.tasks:
                if task not in known:
                    raise ConfigError(f"unknown task {task!r} in `tasks`; known tasks: {', '.join(sorted(known))}")
            if self.env:
                try:
                    check_env_options(self.tasks, self.env)
                except ValueError as error:
                    raise ConfigError(f"config key 'env': {error}") from None
            try:
                check_prompt_style(self.tasks, self.prompt)
            except ValueError as error:
                raise ConfigError(f"config key 'prompt': {error}") from None
        elif self.env or self.prompt is not None:
            key = "env" if self.env else "prompt"
            raise ConfigError(f"config key {key!r} applies to expert data made from `tasks`, not to saved `data`")
        # [low, high]; the keys in `above` exclude their low end, those in `below` their high end.
        check_ranges(self, {"episodes": (1, MAX_EPISODES), "revisions": (0, MAX_REVISIONS), "epochs": (0, 1e6),
                            "max_steps": (-1, 10**9), "batch_size": (1, 65_536), "grad_accum": (1, 65_536),
                            "learning_rate": (0, 1), "warmup_ratio": (0, 1), "weight_decay": (0, None),
                            "replay_share": (0, 1),
                            "max_grad_norm": (0, None), "max_length": (16, 10**7), "save_steps": (1, 10**9),
                            "save_total_limit": (1, None), "logging_steps": (1, 10**9)},
                     above=("epochs", "learning_rate", "max_grad_norm"), below=("warmup_ratio", "replay_share"))
        if (self.replay is None) != (self.replay_share == 0):
            raise ConfigError("give `replay` (a dataset directory) and a `replay_share` above 0 together, or neither")
        check_lora_ranges(self)
        if self.max_steps == 0:
            raise ConfigError("config key 'max_steps' must be positive or -1, not 0")
        for key, path in {"model": self.model, "data": self.data, "replay": self.replay}.items():
            if path is not None and Path(path).resolve() == Path(self.output_dir).resolve():
                raise ConfigError(f"output_dir is the {key} itself ({path!r}); write the run somewhere else")
        reporters = {"tensorboard", "wandb", "none"}
        for name in self.report_to:
            if name not in reporters:
                raise ConfigError(f"config key 'report_to' takes {', '.join(sorted(reporters))}, not {name!r}")
            if name != "none" and importlib.util.find_spec(name) is None:
                raise ConfigError(f"config key 'report_to': {name} is not installed (pip install {name})")


@dataclass
class SFTResult:
    output_dir: Path
    final_model: Path
    steps: int
    tokens: int
    flops: float
    log: list[dict[str, Any]]


def run_sft(config: SFTRunConfig, callbacks: list | None = None) -> SFTResult:
    # The training stack is imported here, not above: the CLI builds its parser from SFTRunConfig without it.
    import accelerate
    import torch
    import transformers
    import trl
    from transformers.trainer_utils import get_last_checkpoint

    from shiftlab.models.loading import is_vision_language
    from shiftlab.training.common import (
        freeze_vision,
        load_model,
        lora_config,
        lora_targets_checked,
        resolve_precision,
        save_final,
    )

    # torchrun and `accelerate launch` set WORLD_SIZE; it is needed before TRL sets up the processes.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.batch_size % world:
        raise ConfigError(f"batch_size ({config.batch_size}) must be a multiple of the number of processes "
                          f"({world}): it is the batch over all of them")
    output = output_directory(config.output_dir)
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    resume_from = resume_point(config, output, Path(last) if last else None, "trainer_state.json", RESUME_KEYS)
    if resume_from is not None:
        _check_checkpoint(resume_from)

    for key in ("data", "replay"):
        path = getattr(config, key)
        if path is not None and not (Path(path) / "state.json").is_file():
            raise ConfigError(f"{key} {path!r} is not a dataset directory (made by `shiftlab sft-data`)")
    precision = resolve_precision(config.precision)

    # Model: text or vision-language, chosen by the checkpoint's config.
    model, processor = load_model(config.model)
    is_vlm = is_vision_language(model.config)

    with warnings.catch_warnings():  # TRL's own default turns checkpointing on, so it is always passed
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
        args = trl.SFTConfig(
            output_dir=str(output),
            num_train_epochs=config.epochs,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.batch_size // world,
            gradient_accumulation_steps=config.grad_accum,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_ratio,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            max_length=config.max_length,
            completion_only_loss=config.loss == "completion",
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            gradient_checkpointing=config.gradient_checkpointing,
            save_strategy="steps",
            save_steps=config.save_steps,
            save_total_limit=config.save_total_limit,
            logging_steps=config.logging_steps,
            report_to=[r for r in config.report_to if r != "none"] or "none",
            seed=config.seed,
            data_seed=config.seed,
            include_num_input_tokens_seen="non_padding",
            train_sampling_strategy="group_by_length" if config.group_by_length else "random",
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
        )
    args.device  # noqa: B018 - sets up the processes (SFTConfig does it on first use)
    args_state = accelerate.PartialState()  # as SFTConfig set it up: the processes of the run
    main = args_state.is_main_process
    args_state.wait_for_everyone()  # every process has read the saved config before it is rewritten
    log = JsonlLog(output / "logs.jsonl")
    if main:
        (output / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
        log.truncate_after(_checkpoint_step(resume_from) if resume_from else 0)

    # Data: the saved dataset, or the run's own expert data, made once so a resume sees the same rows;
    # the main process makes (and caches) it, the others then read it.
    tokenizer = getattr(processor, "tokenizer", processor)
    with args.main_process_first(local=False, desc="training data"):
        dataset = _training_data(config, output)
        if "images" in dataset.column_names and not is_vlm:
            raise ConfigError(f"the data has images but {config.model!r} is a text-only model")
        # A template without generation markers (most downloaded checkpoints): the assistant's tokens are
        # found by rendering, and the rows go to TRL tokenized, with their masks.
        own_masks = (config.loss == "assistant" and "images" not in dataset.column_names
                     and not template_marks_assistant(tokenizer))
        if own_masks:
            dataset = dataset.map(tokenize_with_masks, fn_kwargs={"tokenizer": tokenizer},
                                  remove_columns=["messages"], desc="Finding the assistant's tokens")
        if config.loss == "completion":
            dataset = dataset.map(_prompt_completion, remove_columns=["messages"])
    args.assistant_only_loss = config.loss == "assistant" and not own_masks
    if config.freeze_vision:
        freeze_vision(model)
    parameters = flop_parameters(model)

    class Trainer(trl.SFTTrainer):
        """Adds tokens and FLOPs to every log line and a compute.json to every checkpoint."""

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            tokens = self.state.num_input_tokens_seen
            logs = {**logs, "tokens": tokens, "flops": training_flops(parameters, tokens)}
            super().log(logs, start_time)
            if self.is_world_process_zero():
                log.write({"step": self.state.global_step, **logs})

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            checkpoint = output / f"checkpoint-{self.state.global_step}"
            if self.is_world_process_zero() and checkpoint.is_dir():
                write_compute(checkpoint, step=self.state.global_step, tokens=self.state.num_input_tokens_seen,
                              parameters=parameters)

    with _tensorboard_dir(output / "tensorboard"):
        # TRL adds the adapters itself (and prepares the model for them), so it gets the LoRA config.
        with lora_targets_checked(config):
            try:
                trainer = Trainer(model=model, args=args, train_dataset=dataset, processing_class=processor,
                                  peft_config=lora_config(config), callbacks=callbacks)
            except ValueError as error:
                if "chat template" not in str(error):
                    raise
                raise ConfigError(f"the chat template of {config.model!r} cannot mark the assistant's tokens "
                                  "for `loss: assistant`; use `loss: completion`") from None
        trainer.remove_callback(transformers.ProgressCallback)
        trainer.add_callback(_progress_bar())
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    final = output / "final"
    if main:
        save_final(trainer.model, processor, final)
        write_compute(final, step=trainer.state.global_step, tokens=trainer.state.num_input_tokens_seen,
                      parameters=parameters, base=read_compute(config.model) if Path(config.model).is_dir() else None)
    args_state.wait_for_everyone()
    record = read_compute(final)
    return SFTResult(output, final, trainer.state.global_step, record["tokens"], record["flops"], log.read())




def _progress_bar():
    import transformers

    class ProgressBar(transformers.ProgressCallback):
        """The trainer's bar with the loss on it, instead of a printed dict per log line (the JSONL log
        and TensorBoard keep every number)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
                self.training_bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    return ProgressBar


def _check_checkpoint(path: Path) -> None:
    """The trainer state and weights of the checkpoint a run resumes from, checked before TRL reads them."""
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or type(state.get("global_step")) is not int or state["global_step"] < 1:
            raise ValueError
    except (OSError, ValueError, RecursionError):
        raise ConfigError(f"checkpoint {str(path)!r} has no readable trainer_state.json; delete it to resume from "
                          "the one before, or use a new output_dir") from None
    check_checkpoint_weights(path)


def _checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[-1]) if path.name.rsplit("-", 1)[-1].isdigit() else 0


def _training_data(config: SFTRunConfig, output: Path):
    import datasets

    if config.data is not None:
        dataset = _load(config.data, "data")
        if config.replay is not None:
            dataset = _with_replay(dataset, config)
    else:
        saved = output / "data"
        if (saved / "dataset_info.json").is_file():
            dataset = datasets.load_from_disk(str(saved))
        else:
            sources = [Source(task, config.episodes, config.env, config.revisions, config.prompt) for task in config.tasks]
            dataset = build_dataset(sources, seed=config.data_seed)
            if config.replay is not None:
                dataset = _with_replay(dataset, config)
            tmp = output / "data.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            dataset.save_to_disk(str(tmp))
            tmp.rename(saved)
            dataset = datasets.load_from_disk(str(saved))
    if "messages" not in dataset.column_names:
        raise ConfigError(f"the data has no 'messages' column (columns: {', '.join(dataset.column_names)})")
    keep = [c for c in ("messages", "images") if c in dataset.column_names]
    return dataset.select_columns(keep)


def _load(path: str, key: str):
    import datasets

    try:
        return datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"{key} {path!r} is not a dataset directory: {str(error).splitlines()[0]}") from None


def _with_replay(dataset, config: SFTRunConfig):
    """`dataset` with rows of `config.replay` drawn without replacement (seeded by `data_seed`) to make
    up `replay_share` of the result, shuffled in: new skills learned beside old ones, not over them."""
    import datasets

    replay = _load(config.replay, "replay")
    wanted = round(len(dataset) * config.replay_share / (1 - config.replay_share))
    if wanted > len(replay):
        raise ConfigError(f"replay {config.replay!r} has {len(replay)} rows; a replay_share of {config.replay_share} "
                          f"of {len(dataset)} rows needs {wanted}")
    missing = sorted(set(dataset.column_names) - set(replay.column_names))
    if missing or ("images" in replay.column_names) != ("images" in dataset.column_names):
        raise ConfigError(f"replay {config.replay!r} does not have the data's columns "
                          f"({', '.join(missing) or 'images'}); replay data of the same kind (text or images)")
    drawn = replay.shuffle(generator=np.random.default_rng([config.data_seed, 1])).select(range(wanted))
    drawn = drawn.select_columns(dataset.column_names)
    try:
        mixed = datasets.concatenate_datasets([dataset, drawn.cast(dataset.features)])
    except (ValueError, TypeError) as error:
        raise ConfigError(f"replay {config.replay!r} rows do not fit the data's schema: "
                          f"{str(error).splitlines()[0]}") from None
    return mixed.shuffle(generator=np.random.default_rng([config.data_seed, 2])).flatten_indices()


def _prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    messages = row["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


@contextlib.contextmanager
def _tensorboard_dir(path: Path):
    """TensorBoard writes under the run, in one folder across resumes (transformers reads the env var)."""
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous
