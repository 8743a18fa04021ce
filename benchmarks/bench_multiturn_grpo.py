"""Multi-turn GRPO step time: shiftlab's RL trainer against TRL's GRPOTrainer with `environment_factory`.

    python benchmarks/bench_multiturn_grpo.py [--quick] [--size small] [--model DIR] [--prompts 4] [--group 4]
                                              [--max-new-tokens 64] [--attempts 5] [--warmup 1] [--steps 3]
                                              [--micro-batch 16] [--trl-first] [--json PATH]

Both trainers train the same model (built once, or `--model DIR`) on GP-L with revisions: `--attempts`
answers per hand, the verifier's feedback after each wrong one. Each step plays `--prompts` hands (env
seed 1_000_000 + k for hand k, for both) `--group` times at temperature 1.0, top-p 1.0, no top-k, rewards
each episode by the sum of the verifier's rewards (shiftlab's `per_attempt`; TRL through
`TaskEnvironment.get_reward`), and takes one AdamW step (learning rate 1e-5, fp32, no KL, token-mean loss),
`--micro-batch` samples per forward pass.

The two run a multi-turn episode differently, which the lengths have to follow:
- shiftlab: each answer is its own sample of at most `--max-new-tokens` tokens, and the next turn's prompt is
  the conversation so far with the feedback (the prompt style's revision turn);
- TRL: one completion per episode, the answers and the tool's replies concatenated; the model answers by
  calling `submit_answer` and its budget `max_completion_length` covers the whole episode, so it is set to
  `--attempts * --max-new-tokens`, and `max_tool_calling_iterations` to `--attempts`.
A model that never calls the tool (any untrained one) ends TRL's episode after its first answer, while
shiftlab's episode goes on to the revisions, so the table gives the turns per episode of each: read the
step times with them. The prompts differ too (TRL's carry the tool's schema and a system message).

Timing as in bench_grpo.py (whose helpers this reuses): shiftlab's logged seconds/step, TRL's
`on_step_begin`..`on_step_end`; the first `--warmup` steps dropped; medians of the rest and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental in TRL 1.16

import torch  # noqa: E402
from bench_grpo import DATA_SEED, LEARNING_RATE, _sync, machine, run_in_turn, versions  # noqa: E402

TASK = "gp-l"


def run_shiftlab(model_dir: Path, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl

    config = RLConfig(
        model=str(model_dir), output_dir=str(workdir / "shiftlab"), algorithm="grpo", task=TASK,
        env={"max_attempts": args.attempts}, rewards="per_attempt", steps=args.warmup + args.steps,
        prompts_per_step=args.prompts, group_size=args.group, data_seed=DATA_SEED, max_new_tokens=args.max_new_tokens,
        temperature=1.0, top_p=1.0, rollout_batch_size=args.prompts * args.group, learning_rate=LEARNING_RATE,
        micro_batch_size=args.micro_batch, loss_aggregation="token-mean", kl_coef=0.0, precision="fp32",
        eval_steps=0, eval_tasks=[], save_steps=10**6, report_to=["none"], resume="never", seed=0,
    )
    entries = [e for e in run_rl(config, progress=False).log if e.get("kind") == "train"]
    return {"seconds": [e["seconds/step"] for e in entries],
            "turns_per_episode": [e["turns_per_episode"] for e in entries],
            "rollout": [e["seconds/rollout"] for e in entries], "update": [e["seconds/update"] for e in entries],
            "tokens": [e["answer_tokens_mean"] * n for e, n in zip(entries, _increments(entries, "samples"), strict=True)]}


def _increments(entries: list[dict], key: str) -> list[float]:
    """Per-step amounts of a cumulative log figure."""
    values = [e[key] for e in entries]
    return [b - a for a, b in zip([0, *values[:-1]], values, strict=True)]


def run_trl(model_dir: Path, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from shiftlab.integrations.trl import environment_factory, prepare_tokenizer, prompt_dataset

    steps, batch = args.warmup + args.steps, args.prompts * args.group

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin, self.seconds = 0.0, []

        def on_step_begin(self, args, state, control, **kwargs):
            _sync()
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.seconds.append(time.perf_counter() - self.begin)

    config = GRPOConfig(
        output_dir=str(workdir / "trl"), max_steps=steps, per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=batch // args.micro_batch, num_generations=args.group,
        max_completion_length=args.attempts * args.max_new_tokens, max_tool_calling_iterations=args.attempts,
        temperature=1.0, top_p=1.0, top_k=0, learning_rate=LEARNING_RATE, lr_scheduler_type="constant",
        warmup_steps=0, beta=0.0, num_iterations=1, loss_type="dapo", scale_rewards="group",
        activation_checkpointing=False, bf16=False, fp16=False, use_cpu=not torch.cuda.is_available(),
        shuffle_dataset=False, seed=0, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=1,
        disable_tqdm=True, log_completions=False, dataloader_num_workers=0,
    )
    assert config.generation_batch_size == batch
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model, args=config, processing_class=tokenizer, callbacks=[timer],
        train_dataset=prompt_dataset(TASK, steps * args.prompts, seed=DATA_SEED),
        environment_factory=environment_factory(TASK, rewards="per_attempt", env_options={"max_attempts": args.attempts}),
    )
    trainer.train()
    logs = [e for e in trainer.state.log_history if "tools/call_frequency" in e]
    if len(timer.seconds) != steps or len(logs) != steps:
        raise RuntimeError(f"TRL ran {len(timer.seconds)} steps with {len(logs)} logs, not {steps}")
    # An episode's turns: its first answer, then one more per tool call that got a reply.
    return {"seconds": timer.seconds, "turns_per_episode": [1.0 + e["tools/call_frequency"] for e in logs],
            "tokens": [e["completions/mean_length"] * batch for e in logs]}


def summarize(run: dict[str, list[float]], warmup: int) -> dict[str, Any]:
    seconds, tokens = run["seconds"][warmup:], run["tokens"][warmup:]
    return {"seconds_per_step": statistics.median(seconds), "seconds_min": min(seconds), "seconds_max": max(seconds),
            "turns_per_episode": statistics.mean(run["turns_per_episode"][warmup:]),
            "tokens_per_second": statistics.median(t / s for t, s in zip(tokens, seconds, strict=True)),
            **{f"seconds_{part}_median": statistics.median(run[part][warmup:]) for part in ("rollout", "update")
               if part in run},
            "steps": run}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny model, 1 hand x 2 answers, 8 tokens a turn, 2 attempts, 1 + 1 steps")
    parser.add_argument("--size", choices=["tiny", "small"], default=None, help="built model size (default small)")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint directory to train instead")
    parser.add_argument("--prompts", type=int, default=None, help="hands per step (default 4)")
    parser.add_argument("--group", type=int, default=None, help="episodes per hand, the GRPO group (default 4)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="longest answer per turn (default 64)")
    parser.add_argument("--attempts", type=int, default=None, help="answers per hand (default 5, GP-L's own)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="samples per forward pass (default: gcd(16, prompts * group))")
    parser.add_argument("--trl-first", action="store_true", help="run TRL before shiftlab")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    defaults = ({"size": "tiny", "prompts": 1, "group": 2, "max_new_tokens": 8, "attempts": 2, "warmup": 1, "steps": 1}
                if args.quick else
                {"size": "small", "prompts": 4, "group": 4, "max_new_tokens": 64, "attempts": 5, "warmup": 1, "steps": 3})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    batch = args.prompts * args.group
    if args.micro_batch is None:
        args.micro_batch = math.gcd(16, batch)
    if (args.group < 2 or args.steps < 1 or args.warmup < 0 or args.attempts < 1 or args.micro_batch < 1
            or batch % args.micro_batch):
        parser.error("need --group >= 2, --steps >= 1, --warmup >= 0, --attempts >= 1 and a --micro-batch that "
                     "divides prompts * group")

    info = {**machine(), **versions()}
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads; "
          f"torch {info['torch']}, transformers {info['transformers']}, trl {info['trl']}; {info['date']}")
    print(f"setup: {TASK} with revisions ({args.attempts} attempts), model {args.model or args.size}, "
          f"{args.prompts} hands x {args.group} episodes per step, {args.max_new_tokens} tokens a turn "
          f"(TRL: {args.attempts * args.max_new_tokens} an episode), micro-batch {args.micro_batch}, fp32, "
          f"{args.warmup} warm-up + {args.steps} timed steps each")

    trainers = {"shiftlab": run_shiftlab, "TRL": run_trl}
    runs, others, order = run_in_turn(trainers, args)
    rows = {name: summarize(runs[name], args.warmup) for name in trainers}

    print()
    print("| trainer | median s/step (min-max) | turns per episode | generated tokens/s |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds_per_step']:.3f} ({row['seconds_min']:.3f}-{row['seconds_max']:.3f}) "
              f"| {row['turns_per_episode']:.2f} | {row['tokens_per_second']:.1f} |")
    for name, row in rows.items():
        if "seconds_rollout_median" in row:
            print(f"{name} step split (medians): rollout {row['seconds_rollout_median']:.3f} s, "
                  f"update {row['seconds_update_median']:.3f} s")
    ratio = rows["TRL"]["seconds_per_step"] / rows["shiftlab"]["seconds_per_step"]
    print()
    print(f"TRL / shiftlab seconds per step: {ratio:.2f}x (above 1: shiftlab's step is faster)")
    if None not in others.values():
        print("CPU time taken by other processes: "
              + ", ".join(f"{share * 100:.0f}% during the {name} run" for name, share in others.items())
              + (" -- the machine was busy: provisional figures, rerun" if max(others.values()) > 0.05 else ""))
    settings = {k: getattr(args, k) for k in ("size", "prompts", "group", "max_new_tokens", "attempts", "warmup",
                                              "steps", "micro_batch")}
    settings["model"] = str(args.model) if args.model else None
    report = {"machine": {**info, "cpu_share_of_other_processes": others}, "settings": {**settings, "order": order},
              "results": rows, "trl_over_shiftlab_seconds": ratio}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
