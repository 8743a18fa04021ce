"""The study's settings and its named presets.

A study is: a base model (given, or built offline and optionally pretrained), an SFT initialization on
the in-distribution task, then two branches from it at matched training compute, continued SFT and RL,
each evaluated on the ID task and its OOD variants at regular compute checkpoints. The `init`, `sft`
and `rl` mappings are settings of the SFT and RL trainers (`shiftlab sft --help`, `shiftlab rl --help`);
the study fills in the model, data, output and evaluation settings itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shiftlab.task import check_env_options, list_presets, ood_presets, report_metrics
from shiftlab.training.config import ConfigError


@dataclass
class StudyConfig:
    preset: str = field(default="custom", metadata={"help": "name shown in the report"})
    output_dir: str = field(default="runs/study", metadata={"help": "every stage's output, and the report"})
    model: str | None = field(default=None, metadata={"help": "base model path or hub id (None: build one)"})
    build_kind: Literal["lm", "vlm"] = field(default="lm", metadata={"help": "model built when `model` is None"})
    build_size: Literal["tiny", "small"] = "small"
    pretrain: dict | None = field(default=None, metadata={"help": "pretrain the built model (`shiftlab pretrain` "
                                                                  "settings), or None"})
    task: str = field(default="gp-l", metadata={"help": "the in-distribution task preset"})
    env: dict = field(default_factory=dict, metadata={"help": "environment options over every task's, in every "
                                                                "stage (e.g. num_cards: 3)"})
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
    seed: int = field(default=0, metadata={"help": "model building, data, training and sampling"})

    def validate(self) -> None:
        known = {p.name for p in list_presets()}
        for task in [self.task, *(self.eval_tasks or [])]:
            if task not in known:
                raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(sorted(known))}")
        try:
            check_env_options([self.task, *(self.eval_tasks or [p.name for p in ood_presets(self.task)])], self.env)
        except ValueError as error:
            raise ConfigError(f"config key 'env': {error}") from None
        from shiftlab.training.config import check_ranges, load_config
        from shiftlab.training.expert_data import MAX_EPISODES

        check_ranges(self, {"eval_episodes": (1, 10**6), "init_episodes": (1, MAX_EPISODES),
                            "sft_episodes": (1, MAX_EPISODES), "checkpoints": (1, 100)})
        if self.metric not in report_metrics():
            raise ConfigError(f"config key 'metric' must be one of {', '.join(report_metrics())}, not {self.metric!r}")
        if self.pretrain is not None:
            from shiftlab.training.pretrain import PretrainConfig

            if "output_dir" in self.pretrain:
                raise ConfigError("config key pretrain.output_dir is set by the study itself")
            try:
                load_config(PretrainConfig, overrides={"output_dir": "pretrain", **self.pretrain})
            except ConfigError as error:
                raise ConfigError(f"in `pretrain`: {error}") from None
        from shiftlab.training.rl.config import RLConfig
        from shiftlab.training.sft import SFTRunConfig

        owned = {"model", "output_dir", "data", "tasks", "task", "env", "eval_tasks", "eval_episodes",
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
                load_config(cls, overrides={"model": "base", **required, **values})
            except ConfigError as error:
                raise ConfigError(f"in `{name}`: {error}") from None


_GP_SFT = {"learning_rate": 1e-5, "batch_size": 16, "lr_scheduler": "constant", "warmup_ratio": 0.0}
_GP_RL = {"algorithm": "ppo", "temperature": 0.2, "learning_rate": 1e-6, "lr_scheduler": "cosine", "epochs": 4,
          "mini_batches": 2, "gamma": 0.9, "gae_lambda": 0.95, "ppo_clip": 0.1, "thought_coef": 0.5,
          "max_grad_norm": 0.01, "adam_eps": 1e-7, "group_size": 1, "max_new_tokens": 512}

PRESETS: dict[str, dict[str, Any]] = {
    # Every stage in about 30 s on 2 CPU cores: for the test suite, not for conclusions.
    "tiny": {
        "build_size": "tiny", "task": "gp-l", "env": {"num_cards": 3}, "eval_episodes": 8, "checkpoints": 2,
        "init_episodes": 64, "init": {"max_steps": 20, "batch_size": 8, "learning_rate": 5e-3,
                                      "lr_scheduler": "constant", "warmup_ratio": 0.0},
        "sft_episodes": 64, "sft": {"batch_size": 8, "learning_rate": 5e-3, "lr_scheduler": "constant",
                                    "warmup_ratio": 0.0},
        "rl": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "max_new_tokens": 32, "learning_rate": 1e-3},
    },
    # The CPU path, about 12 minutes on 2 cores: the small model built offline, on GP-L with three cards
    # and two attempts instead of four and five (a hand a 5M-parameter model learns to solve from a few
    # minutes of SFT on a CPU, and short enough episodes to evaluate eight times).
    "quickstart": {
        "build_size": "small", "task": "gp-l", "env": {"num_cards": 3, "max_attempts": 2}, "eval_episodes": 64,
        "checkpoints": 3,
        "init_episodes": 5000, "init": {"max_steps": 600, "batch_size": 8, "learning_rate": 1e-3,
                                        "lr_scheduler": "constant_with_warmup", "warmup_ratio": 0.05,
                                        "group_by_length": True},
        "sft_episodes": 4000, "sft": {"batch_size": 8, "learning_rate": 5e-4, "lr_scheduler": "constant",
                                      "warmup_ratio": 0.0, "group_by_length": True},
        "rl": {"steps": 12, "prompts_per_step": 8, "group_size": 4, "max_new_tokens": 48, "learning_rate": 5e-5,
               "temperature": 0.6, "clip_high": 0.28},
    },
    # The paper's four settings (arXiv 2501.17161, App. C): pass --model; for GPU machines.
    "gp-l": {"task": "gp-l", "init": _GP_SFT, "sft": _GP_SFT, "rl": {**_GP_RL, "steps": 20, "prompts_per_step": 512}},
    "gp-vl": {"task": "gp-vl", "init": _GP_SFT, "sft": _GP_SFT,
              "rl": {**_GP_RL, "steps": 20, "prompts_per_step": 512}},
    "virl-l": {"task": "virl-l", "metric": "step_accuracy", "init": _GP_SFT, "sft": _GP_SFT,
               "rl": {**_GP_RL, "steps": 15, "prompts_per_step": 256, "lr_scheduler": "cosine"}},
    "virl-vl": {"task": "virl-vl", "metric": "step_accuracy", "init": _GP_SFT, "sft": _GP_SFT,
                "rl": {**_GP_RL, "steps": 15, "prompts_per_step": 256, "learning_rate": 1e-7}},
}
PAPER_PRESETS = ("gp-l", "gp-vl", "virl-l", "virl-vl")


def preset_values(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown study preset {name!r}; presets: {', '.join(PRESETS)}")
    return {"preset": name, "output_dir": f"runs/study-{name}", **{k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()}}
