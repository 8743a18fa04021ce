"""The RL run's settings: one dataclass, validated before any model is loaded.

Defaults are a GRPO run that fits a laptop; `algorithm: ppo` with the PPO block follows the paper's
trainer (arXiv 2501.17161 App. C: clip 0.1, gamma 0.9, lambda 0.95, 4 epochs, thought weight 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shiftlab.evaluation import MAX_BATCH_SIZE
from shiftlab.task import check_prompt_style, list_presets
from shiftlab.training.config import ConfigError, check_lora_ranges, check_ranges

# Bounds that keep one step within reason on any machine: more is a typo, not a plan.
MAX_NEW_TOKENS = 32_768
MAX_EPISODES_PER_STEP = 65_536

# Settings a resumed run must share with the run it continues, or its steps would not follow.
RESUME_KEYS = ("model", "algorithm", "task", "env", "prompt", "rewards", "prompts_per_step", "group_size", "data_seed",
               "seed", "train_episodes", "max_new_tokens", "temperature", "top_p", "lora", "lora_r", "lora_alpha", "lora_dropout",
               "lora_targets", "value_hidden", "overlong", "overlong_buffer", "overlong_penalty")


@dataclass
class RLConfig:
    model: str = field(metadata={"help": "model directory or hub id to start from (usually an SFT model)"})
    output_dir: str = field(default="runs/rl", metadata={"help": "checkpoints, logs, evaluations, final model"})
    algorithm: Literal["grpo", "ppo"] = field(
        default="grpo", metadata={"help": "grpo: group-relative advantages; ppo: value head and GAE (the paper)"})
    task: str = field(default="gp-l", metadata={"help": "task preset to train on"})
    env: dict = field(default_factory=dict, metadata={"help": "environment options over the preset's"})
    prompt: str | None = field(default=None, metadata={
        "help": "prompt style of rollouts and evaluations, e.g. compact; None: each preset's own"})
    rewards: Literal["per_attempt", "outcome"] = field(
        default="per_attempt",
        metadata={"help": "per_attempt: the verifier's reward for every answer (the paper); outcome: 1 for a "
                          "solved episode, else 0, on its last answer"})
    steps: int = field(default=50, metadata={"help": "RL steps, each a rollout and an update"})
    prompts_per_step: int = field(default=8, metadata={"help": "distinct episodes (seeds) per step"})
    group_size: int = field(default=8, metadata={"help": "episodes played from each seed (a GRPO group)"})
    data_seed: int = field(default=1_000_000,
                           metadata={"help": "episode k of training uses env seed data_seed + k (evaluation "
                                             "uses seeds from 0, so the two never meet)"})
    train_episodes: int | None = field(
        default=None, metadata={"help": "a fixed pool of training episodes (env seeds data_seed .. data_seed + N - 1), "
                                        "played in turn and replayed, as a prompt dataset is over epochs; None: "
                                        "every step draws new episodes"})
    max_new_tokens: int = field(default=128, metadata={"help": "longest answer per turn"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    top_p: float = 1.0
    rollout_batch_size: int = field(default=64, metadata={"help": "episodes stepped together in a rollout"})
    rollout_engine: Literal["hf", "vllm"] = field(
        default="hf", metadata={"help": "hf: the trained model generates; vllm: a colocated vLLM engine (CUDA, "
                                        "`pip install shiftlab[vllm]`) that gets the weights before every step"})
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "share of the GPU's memory the vLLM engine may take (rollout_engine: vllm)"})

    # Optimisation
    learning_rate: float = 1e-6
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = field(default=0, metadata={"help": "optimizer steps of linear warm-up"})
    weight_decay: float = 0.0
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    epochs: int = field(default=1, metadata={"help": "passes over each rollout (the paper's PPO: 4)"})
    mini_batches: int = field(default=1, metadata={"help": "optimizer steps per pass"})
    micro_batch_size: int = field(default=16, metadata={"help": "samples per forward pass (gradient accumulation)"})

    # Policy loss (both algorithms)
    clip_low: float = field(default=0.2, metadata={"help": "PPO-clip epsilon below 1 (GRPO)"})
    clip_high: float = field(default=0.2, metadata={"help": "epsilon above 1; 0.28 is DAPO's clip-higher (GRPO)"})
    dual_clip: float | None = field(default=None, metadata={"help": "cap negative-advantage losses at c*|A| (GRPO)"})
    loss_aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                              "seq-mean-token-sum-norm"] = field(
        default="token-mean", metadata={"help": "how token losses become one (seq-mean-token-sum-norm: Dr. GRPO)"})
    kl_coef: float = field(default=0.0, metadata={"help": "weight of the KL to the frozen start model (0: none)"})
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = "k3"
    kl_placement: Literal["loss", "reward"] = field(
        default="loss", metadata={"help": "KL as a loss term, or subtracted from the rewards (k1 there)"})
    kl_straight_through: bool = field(default=False, metadata={"help": "value of the estimator, gradient of k2"})
    target_kl: float | None = field(
        default=None, metadata={"help": "stop a step's remaining updates once a mini-batch's approx_kl exceeds this"})
    entropy_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus (0: none)"})
    overlong: Literal["keep", "filter", "penalty"] = field(
        default="keep", metadata={"help": "answers cut at max_new_tokens: keep them, leave them out of the loss "
                                          "(DAPO's overlong filtering), or penalise length (DAPO's soft penalty)"})
    overlong_buffer: int = field(default=16, metadata={"help": "penalty: it grows linearly over the last N tokens "
                                                              "before max_new_tokens"})
    overlong_penalty: float = field(default=1.0, metadata={"help": "penalty at max_new_tokens"})

    # GRPO
    advantage: Literal["grpo", "dr_grpo", "rloo"] = field(
        default="grpo", metadata={"help": "group baseline: mean/std (grpo), mean (dr_grpo), leave-one-out (rloo)"})
    dynamic_sampling: bool = field(default=False, metadata={"help": "drop groups whose rewards are all equal"})
    sampling_rounds: int = field(default=3, metadata={"help": "most rollouts per step to fill the batch "
                                                              "when dynamic_sampling drops groups"})

    # PPO (the paper's)
    gamma: float = 0.9
    gae_lambda: float = 0.95
    ppo_clip: float = 0.1
    thought_coef: float = field(default=0.5, metadata={"help": "weight of the reasoning tokens in log pi(a|s)"})
    value_coef: float = 0.5
    value_clip: float | None = 0.1
    value_hidden: list[int] = field(default_factory=lambda: [1024, 512], metadata={"help": "value MLP widths"})

    # Model
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "auto: bf16 on a GPU that has it, else fp32"})
    gradient_checkpointing: bool = False

    # Evaluation, checkpoints, logs
    eval_tasks: list[str] | None = field(
        default=None, metadata={"help": "presets to evaluate (None: the task and its OOD variants; []: none)"})
    eval_steps: int = field(default=10, metadata={"help": "evaluate every N steps, and before the first (0: never)"})
    eval_at_start: bool = field(default=True, metadata={"help": "also evaluate the start model before step 1"})
    eval_episodes: int = 32
    eval_temperature: float = field(default=0.0, metadata={"help": "0: greedy answers"})
    save_steps: int = field(default=10, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int | None = field(default=None, metadata={"help": "keep only the newest N checkpoints"})
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"],
                                 metadata={"help": "tensorboard or none (JSONL is always written)"})
    seed: int = field(default=0, metadata={"help": "sampling, shuffling and value-head initialisation"})
    resume: str = field(default="auto", metadata={"help": "auto (the last checkpoint, if any), never, or a path"})

    def validate(self) -> None:
        known = {p.name for p in list_presets()}
        for task in [self.task, *(self.eval_tasks or [])]:
            if task not in known:
                raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(sorted(known))}")
        # [low, high]; the keys in `above` exclude their low end.
        check_ranges(self, {
            "steps": (1, 10**9), "prompts_per_step": (1, None), "group_size": (1, None),
            "max_new_tokens": (1, MAX_NEW_TOKENS), "rollout_batch_size": (1, MAX_BATCH_SIZE), "epochs": (1, 1000),
            "mini_batches": (1, 65_536), "micro_batch_size": (1, 65_536), "sampling_rounds": (1, 1000),
            "eval_episodes": (1, 10**6), "save_steps": (1, 10**9), "eval_steps": (0, 10**9),
            "learning_rate": (0, 1), "adam_eps": (0, 1), "max_grad_norm": (0, None), "weight_decay": (0, None),
            "warmup_steps": (0, 10**9), "temperature": (0, 100), "eval_temperature": (0, 100), "top_p": (0, 1),
            "clip_low": (0, 1), "clip_high": (0, 1), "ppo_clip": (0, 1), "gamma": (0, 1), "gae_lambda": (0, 1),
            "thought_coef": (0, 1), "dual_clip": (1, None), "kl_coef": (0, None), "value_coef": (0, None),
            "value_clip": (0, None), "value_hidden": (1, 65_536), "save_total_limit": (1, None),
            "target_kl": (0, None), "entropy_coef": (0, None), "overlong_buffer": (1, MAX_NEW_TOKENS),
            "overlong_penalty": (0, None), "vllm_gpu_memory_utilization": (0, 1),
        }, above=("learning_rate", "adam_eps", "max_grad_norm", "top_p", "clip_low", "clip_high", "ppo_clip",
                  "dual_clip", "value_clip", "target_kl", "vllm_gpu_memory_utilization"),
           below=("clip_low", "clip_high", "ppo_clip"))
        try:
            check_prompt_style([self.task, *(self.eval_tasks or [])], self.prompt)
        except ValueError as error:
            raise ConfigError(f"config key 'prompt': {error}") from None
        check_lora_ranges(self)
        if self.train_episodes is not None and not (
                type(self.train_episodes) is int and self.prompts_per_step <= self.train_episodes <= 10**9):
            raise ConfigError(f"config key 'train_episodes' must be None or an int from prompts_per_step "
                              f"({self.prompts_per_step}) to 1e9, not {self.train_episodes!r}")
        if self.prompts_per_step * self.group_size > MAX_EPISODES_PER_STEP:
            raise ConfigError(f"prompts_per_step x group_size must be at most {MAX_EPISODES_PER_STEP:,} episodes "
                              f"per step, not {self.prompts_per_step * self.group_size:,}")
        if Path(self.model).resolve() == Path(self.output_dir).resolve():
            raise ConfigError(f"output_dir is the model itself ({self.model!r}); write the run somewhere else")
        if self.algorithm == "grpo" and self.group_size < 2 and self.advantage != "rloo":
            raise ConfigError("GRPO needs group_size >= 2: a group of one has no baseline to compare with")
        if self.rollout_engine == "vllm" and self.lora:
            raise ConfigError("rollout_engine: vllm does not take LoRA runs yet (the engine would need the merged "
                              "weights every step); use rollout_engine: hf")
        for name in self.report_to:
            if name not in ("tensorboard", "none"):
                raise ConfigError(f"config key 'report_to' takes tensorboard or none, not {name!r}")
