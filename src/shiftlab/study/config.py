"""The study's settings and its named presets.

A study is: a base model (given, or built offline and optionally pretrained), an SFT initialization on
the in-distribution task, then two branches from it at matched training compute, continued SFT and RL,
each evaluated on the ID task and its OOD variants at regular compute checkpoints. The `init`, `sft`
and `rl` mappings are settings of the SFT and RL trainers (`shiftlab sft --help`, `shiftlab rl --help`);
the study fills in the model, data, output and evaluation settings itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from shiftlab.task import (
    MAX_EPISODES,
    check_env_options,
    check_prompt_style,
    list_presets,
    ood_presets,
    report_metrics,
)
from shiftlab.training.config import ConfigError, check_ranges, load_config
from shiftlab.training.pretrain import PretrainConfig
from shiftlab.training.rl.config import RLConfig
from shiftlab.training.sft import SFTRunConfig


@dataclass
class StudyConfig:
    preset: str = field(default="custom", metadata={"help": "name shown in the report"})
    output_dir: str = field(default="runs/study", metadata={"help": "every stage's output, and the report"})
    model: str | None = field(default=None, metadata={"help": "base model path or hub id (None: build one)"})
    build_kind: Literal["lm", "vlm"] = field(default="lm", metadata={"help": "model built when `model` is None"})
    build_size: Literal["tiny", "mini", "small"] = "small"
    pretrain: dict | None = field(default=None, metadata={"help": "pretrain the built model (`shiftlab pretrain` "
                                                                  "settings), or None; cached by its plan's hash"})
    cache_dir: str | None = field(default=None, metadata={"help": "where pretrained bases are cached (None: "
                                                                  "$SHIFTLAB_CACHE or ~/.cache/shiftlab)"})
    task: str = field(default="gp-l", metadata={"help": "the in-distribution task preset"})
    env: dict = field(default_factory=dict, metadata={"help": "environment options over every task's, in every "
                                                                "stage"})
    prompt: str | None = field(default=None, metadata={
        "help": "the tasks' prompt style in every stage (pretraining, SFT, RL, evaluation), e.g. compact; None: "
                "each preset's own"})
    eval_tasks: list[str] | None = field(default=None, metadata={"help": "None: the task and its OOD variants"})
    eval_episodes: int = field(default=64, metadata={"help": "episodes per task at every evaluation"})
    eval_base: bool = field(default=True, metadata={"help": "also evaluate the untrained base model"})
    metric: str = field(default="success_rate", metadata={"help": "the headline metric of the report"})
    init_episodes: int = field(default=1000, metadata={"help": "expert episodes of the SFT initialization"})
    init: dict = field(default_factory=dict, metadata={"help": "SFT settings of the initialization"})
    sft_episodes: int = field(default=1000, metadata={"help": "expert episodes of the SFT branch"})
    sft: dict = field(default_factory=dict, metadata={"help": "SFT settings of the SFT branch"})
    rl: dict = field(default_factory=dict, metadata={"help": "RL settings of the RL branch"})
    checkpoints: int = field(default=4, metadata={"help": "evaluations per branch, evenly spaced in compute"})
    seed: int = field(default=0, metadata={"help": "the base, the SFT initialization and evaluation sampling"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2],
                             metadata={"help": "training seeds of each branch (data, order, sampling); every "
                                               "run is evaluated on the same episodes"})

    def validate(self) -> None:
        known = {p.name for p in list_presets()}
        for task in [self.task, *(self.eval_tasks or [])]:
            if task not in known:
                raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(sorted(known))}")
        try:
            check_env_options([self.task, *(self.eval_tasks or [p.name for p in ood_presets(self.task)])], self.env)
        except ValueError as error:
            raise ConfigError(f"config key 'env': {error}") from None
        try:
            check_prompt_style([self.task, *(self.eval_tasks or [])], self.prompt)
        except ValueError as error:
            raise ConfigError(f"config key 'prompt': {error}") from None
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(
                type(s) is not int or not 0 <= s < 10_000 for s in self.seeds):
            raise ConfigError(f"config key 'seeds' must be distinct ints from 0 to 9999, not {self.seeds!r}")
        check_ranges(self, {"eval_episodes": (1, 10**6), "init_episodes": (1, MAX_EPISODES),
                            "sft_episodes": (1, MAX_EPISODES), "checkpoints": (1, 100)})
        if self.metric not in report_metrics():
            raise ConfigError(f"config key 'metric' must be one of {', '.join(report_metrics())}, not {self.metric!r}")
        if self.pretrain is not None:
            for key in ("output_dir", "prompt"):
                if key in self.pretrain:
                    raise ConfigError(f"config key pretrain.{key} is set by the study itself")
            try:
                load_config(PretrainConfig, overrides={"output_dir": "pretrain", **self.pretrain})
            except ConfigError as error:
                raise ConfigError(f"in `pretrain`: {error}") from None
        owned = {"model", "output_dir", "data", "replay", "tasks", "task", "env", "prompt", "eval_tasks", "eval_episodes",
                 "eval_steps", "eval_at_start", "episodes", "data_seed"}
        if {"max_steps", "save_steps"} & set(self.sft):
            raise ConfigError("config keys sft.max_steps and sft.save_steps are set by the study (matched compute)")
        for name, cls, values in (("init", SFTRunConfig, self.init), ("sft", SFTRunConfig, self.sft),
                                  ("rl", RLConfig, self.rl)):
            taken = sorted(owned & set(values))
            if taken:
                raise ConfigError(f"config key {name}.{taken[0]} is set by the study itself")
            try:
                required = {"tasks": [self.task]} if cls is SFTRunConfig else {"task": self.task}
                if cls is SFTRunConfig and values.get("replay_share"):
                    if self.pretrain is None or self.model is not None:
                        raise ConfigError(f"config key {name}.replay_share replays the base's pretraining mixture, "
                                          "so it needs `pretrain` (and no `model`)")
                    required["replay"] = "the base's pretraining mixture"
                load_config(cls, overrides={"model": "base", **required, **values})
            except ConfigError as error:
                raise ConfigError(f"in `{name}`: {error}") from None


# Named presets are data: one YAML file beside this module.
_PRESET_FILE = Path(__file__).with_name("presets.yaml")
_PRESET_DATA = yaml.safe_load(_PRESET_FILE.read_text(encoding="utf-8"))
PRESETS: dict[str, dict[str, Any]] = _PRESET_DATA["presets"]
PAPER_PRESETS: tuple[str, ...] = tuple(_PRESET_DATA["needs_model"])
# Suites run several presets' studies and report them side by side.
SUITES: dict[str, list[str]] = _PRESET_DATA.get("suites", {})


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown study preset {name!r}; presets: {', '.join([*SUITES, *PRESETS])}")
    return {"preset": name, "output_dir": f"runs/study-{name}", **copy.deepcopy(PRESETS[name])}
