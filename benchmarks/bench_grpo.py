"""GRPO step throughput: shiftlab's RL trainer against TRL's GRPOTrainer, side by side in one run.

    python benchmarks/bench_grpo.py [--quick] [--size small] [--prompts 8] [--group 8] [--max-new-tokens 64]
                                    [--warmup 2] [--steps 5] [--micro-batch 16] [--trl-first] [--json PATH]
                                    [--model DIR] [--lora]

`--model DIR` trains a real checkpoint instead (SmolLM2 from `shiftlab import-model --gguf smollm2`),
`--lora` LoRA adapters on every linear layer instead of every weight, the same for both trainers.

Both trainers start from the same freshly built model (saved once, loaded separately for each, so
neither starts from the other's weights) and run the same GRPO step: `--prompts` GP-L hands per step
(single-turn, `max_attempts=1`; episode k is dealt with env seed 1_000_000 + k, the RL config's
`data_seed`), `--group` sampled answers per hand at temperature 1.0, top-p 1.0 and no top-k, at most
`--max-new-tokens` tokens each, all generated in one batch and rewarded by the GP verifier, then one
optimizer step (AdamW, learning rate 1e-5, fp32, no reference model or KL term, token-mean loss:
TRL's "dapo") on the whole rollout, `--micro-batch` samples per forward pass for both (gradient
accumulation over the rest). TRL gets its fastest settings for this: no gradient checkpointing (its
default is on), no old-log-probability pass (one optimizer step per generation), no logging, saving
or evaluation. The ratio depends on the micro-batch (TRL was fastest at 8-16 on a 2-core CPU, shiftlab
at the whole rollout), so quote it with the micro-batch.

A step is everything from sampling to the optimizer step: for shiftlab the "seconds/step" of its
training log, for TRL the time from `on_step_begin` to `on_step_end` of a `TrainerCallback`. The first
`--warmup` steps of each are dropped; the table gives the median over the timed steps of the seconds
per step (with its range), the samples (answers) per second and the generated tokens per second, and
the ratio of shiftlab's medians to TRL's. Goal (from the issue): shiftlab at least 1.5x TRL. Below the
table: each step split into the rollout (generation, rewards, advantages) and the rest (the update),
and the share of the machine's CPU that other processes took during each run. The runs are sequential
in one process (`--trl-first` swaps them), so a busy machine skews one of them: rerun when that share
is above a few percent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never wait on the network

import torch  # noqa: E402

DATA_SEED = 1_000_000  # the RL config's default data_seed: episode k uses env seed DATA_SEED + k
LEARNING_RATE = 1e-5
LORA_R, LORA_ALPHA = 16, 32  # with --lora, on every linear layer, for both trainers


def machine() -> dict[str, Any]:
    from shiftlab.provenance import cpu_name

    cpu = cpu_name()
    if torch.cuda.is_available():
        cpu += f"; GPU {torch.cuda.get_device_name()}"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def _cpu_ticks() -> tuple[int, int, int] | None:
    """Clock ticks so far: the machine's in all, its idle ones, and this process's own (all threads);
    None where /proc is missing."""
    try:
        machine_ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return sum(machine_ticks), machine_ticks[3] + machine_ticks[4], int(own[11]) + int(own[12])


def _others_share(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> float | None:
    """Share of the machine's CPU time between two `_cpu_ticks()` that went neither to this process nor
    to idling: other processes, the kernel on their behalf, or a hypervisor's steal."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    total, idle, own = (b - a for a, b in zip(before, after, strict=True))
    return max(0.0, (total - idle - own) / total)


def _sync() -> None:
    """Wait for queued GPU work, so a step's time is its own (shiftlab's step ends reading the gradient
    norm, which waits too)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def versions() -> dict[str, str]:
    import transformers
    import trl

    return {"transformers": transformers.__version__, "trl": trl.__version__}


def run_shiftlab(model_dir: Path, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl

    config = RLConfig(
        model=str(model_dir), output_dir=str(workdir / "shiftlab"), algorithm="grpo", task="gp-l",
        env={"max_attempts": 1}, steps=args.warmup + args.steps, prompts_per_step=args.prompts,
        group_size=args.group, data_seed=DATA_SEED, max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=1.0,
        rollout_batch_size=args.prompts * args.group, learning_rate=LEARNING_RATE, micro_batch_size=args.micro_batch,
        loss_aggregation="token-mean", kl_coef=0.0, precision="fp32", eval_steps=0, eval_tasks=[],
        save_steps=10**6, report_to=["none"], resume="never", seed=0,
        lora=args.lora, lora_r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
    )
    result = run_rl(config, progress=False)
    entries = [e for e in result.log if e.get("kind") == "train"]
    seconds, samples, tokens, rollout, update = [], [], [], [], []
    previous = 0
    for entry in entries:
        count = entry["samples"] - previous  # the log's sample count is cumulative
        previous = entry["samples"]
        seconds.append(entry["seconds/step"])
        samples.append(count)
        tokens.append(entry["answer_tokens_mean"] * count)
        rollout.append(entry["seconds/rollout"])
        update.append(entry["seconds/update"])
    return {"seconds": seconds, "samples": samples, "tokens": tokens, "seconds_rollout": rollout,
            "seconds_update": update}


def gp_dataset(rows: int):
    """The first turns of episodes 0..rows-1 (env seed DATA_SEED + k), as TRL's conversational prompts."""
    from datasets import Dataset

    from shiftlab.task import get_preset

    preset = get_preset("gp-l")
    env = preset.make_env(max_attempts=1)
    prompt = preset.make_prompt()
    records = []
    for k in range(rows):
        observation, info = env.reset(seed=DATA_SEED + k)
        messages = [{"role": m["role"], "content": _text(m["content"])}
                    for m in prompt.first_turn(observation, info)]
        records.append({"prompt": messages, "seed": DATA_SEED + k})
    env.close()
    return Dataset.from_list(records)


def _text(content: Any) -> str:
    """Message content as plain text, the way shiftlab's policy hands it to a text-only model."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def run_trl(model_dir: Path, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from shiftlab.task import get_preset

    steps = args.warmup + args.steps
    batch = args.prompts * args.group
    env = get_preset("gp-l").make_env(max_attempts=1)
    lengths: list[list[int]] = []  # generated tokens of every completion, one list per rollout

    def gp_reward(prompts, completions, seed, completion_ids, **kwargs):
        """The GP verifier's reward, the same as shiftlab's rollout gets from `env.step`."""
        lengths.append([len(ids) for ids in completion_ids])
        rewards = []
        for completion, episode_seed in zip(completions, seed, strict=True):
            env.reset(seed=int(episode_seed))
            rewards.append(float(env.step(completion[-1]["content"])[1]))
        return rewards

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin = 0.0
            self.seconds: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            _sync()
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _sync()
            self.seconds.append(time.perf_counter() - self.begin)

    # One optimizer step per rollout of prompts * group answers, generated in one batch: the generation
    # batch is the effective training batch (micro-batch * accumulation), so steps_per_generation equals
    # the accumulation and TRL skips its extra no-grad pass for the old log-probabilities.
    accumulation = batch // args.micro_batch
    config = GRPOConfig(
        output_dir=str(workdir / "trl"), max_steps=steps, per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=accumulation, num_generations=args.group,
        max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=LEARNING_RATE, lr_scheduler_type="constant", warmup_steps=0, beta=0.0, num_iterations=1,
        loss_type="dapo", scale_rewards="group", activation_checkpointing=False, bf16=False, fp16=False,
        use_cpu=not torch.cuda.is_available(), shuffle_dataset=False, seed=0, report_to="none", save_strategy="no",
        eval_strategy="no", logging_steps=10**6, disable_tqdm=True, log_completions=False,
        dataloader_num_workers=0,
    )
    assert config.generation_batch_size == batch and config.steps_per_generation == accumulation
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    timer = StepTimer()
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=gp_reward, args=config,
                          train_dataset=gp_dataset(steps * args.prompts), processing_class=tokenizer,
                          callbacks=[timer], peft_config=peft_config)
    # TRL's rollout (prompts, generation, rewards, advantages) is one method; time it to split the step the
    # way shiftlab's log does. Only where this TRL version has it: the step times do not depend on it.
    rollout: list[float] = []
    generate = getattr(trainer, "_generate_and_score_completions", None)
    if generate is not None:
        def timed_generate(*inner_args, **inner_kwargs):
            start = time.perf_counter()
            out = generate(*inner_args, **inner_kwargs)
            rollout.append(time.perf_counter() - start)
            return out

        trainer._generate_and_score_completions = timed_generate
    trainer.train()
    env.close()
    if len(timer.seconds) != steps or len(lengths) != steps:
        raise RuntimeError(f"TRL ran {len(timer.seconds)} steps and {len(lengths)} rollouts, not {steps}")
    run = {"seconds": timer.seconds, "samples": [len(step) for step in lengths],
           "tokens": [sum(step) for step in lengths]}
    if len(rollout) == steps:
        run["seconds_rollout"] = rollout
        run["seconds_update"] = [step - part for step, part in zip(timer.seconds, rollout, strict=True)]
    return run


def summarize(run: dict[str, list[float]], warmup: int) -> dict[str, Any]:
    seconds = run["seconds"][warmup:]
    samples = run["samples"][warmup:]
    tokens = run["tokens"][warmup:]
    summary = {
        "seconds_per_step": statistics.median(seconds), "seconds_min": min(seconds), "seconds_max": max(seconds),
        "samples_per_second": statistics.median(n / s for n, s in zip(samples, seconds, strict=True)),
        "tokens_per_second": statistics.median(t / s for t, s in zip(tokens, seconds, strict=True)),
        "answer_length_mean": sum(tokens) / sum(samples),
        "steps": run,
    }
    for part in ("seconds_rollout", "seconds_update"):
        if part in run:
            summary[f"{part}_median"] = statistics.median(run[part][warmup:])
    return summary



def run_in_turn(trainers: dict[str, Any], args: argparse.Namespace) -> tuple[dict, dict, list[str]]:
    """Each trainer on the same model (`--model`, or one built at `--size`), one after the other in the
    order `--trl-first` picks: their timings, the CPU share other processes took during each, the order."""
    from shiftlab.training.base_model import build_base_model

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        model_dir = args.model or build_base_model(workdir / "model", kind="lm", size=args.size, seed=0)
        order = ["TRL", "shiftlab"] if args.trl_first else ["shiftlab", "TRL"]
        runs, others = {}, {}
        for name in order:
            before = _cpu_ticks()
            runs[name] = trainers[name](model_dir, workdir, args)
            others[name] = _others_share(before, _cpu_ticks())
    return runs, others, order


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny model, 2 prompts x 2 answers of 8 tokens, 1 warm-up + 1 timed step")
    parser.add_argument("--size", choices=["tiny", "small"], default=None, help="model size (default small)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts (hands) per step (default 8)")
    parser.add_argument("--group", type=int, default=None, help="answers per prompt, the GRPO group (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="longest answer (default 64)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="samples per forward pass in the update, both trainers (default 16, shiftlab's "
                             "default, where it divides prompts * group; else their greatest common divisor)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a checkpoint directory to train instead of a built model (e.g. from shiftlab import-model)")
    parser.add_argument("--lora", action="store_true", help=f"train LoRA adapters (r={LORA_R}, all linear layers)")
    parser.add_argument("--trl-first", action="store_true",
                        help="run TRL before shiftlab (default after), to check that the order does not matter")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    defaults = ({"size": "tiny", "prompts": 2, "group": 2, "max_new_tokens": 8, "warmup": 1, "steps": 1}
                if args.quick else
                {"size": "small", "prompts": 8, "group": 8, "max_new_tokens": 64, "warmup": 2, "steps": 5})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    batch = args.prompts * args.group
    if args.micro_batch is None:
        args.micro_batch = math.gcd(16, batch)
    if args.group < 2 or args.steps < 1 or args.warmup < 0 or args.micro_batch < 1 or batch % args.micro_batch:
        parser.error("need --group >= 2, --steps >= 1, --warmup >= 0 and a --micro-batch that divides "
                     "prompts * group")

    info = {**machine(), **versions()}
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads; "
          f"python {info['python']}, torch {info['torch']}, transformers {info['transformers']}, trl {info['trl']}")
    print(f"date: {info['date']}")
    model_name = str(args.model) if args.model else args.size
    print(f"setup: gp-l single-turn, model {model_name}{' with LoRA' if args.lora else ''}, {args.prompts} prompts x {args.group} answers per step, "
          f"at most {args.max_new_tokens} new tokens, micro-batch {args.micro_batch}, fp32, "
          f"{args.warmup} warm-up + {args.steps} timed steps each")

    trainers = {"shiftlab": run_shiftlab, "TRL": run_trl}
    runs, others, order = run_in_turn(trainers, args)
    info["cpu_share_of_other_processes"] = others
    rows = {name: summarize(runs[name], args.warmup) for name in trainers}

    print()
    print("| trainer | median s/step (min-max) | samples/s | generated tokens/s | mean answer length |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds_per_step']:.3f} ({row['seconds_min']:.3f}-{row['seconds_max']:.3f}) "
              f"| {row['samples_per_second']:.2f} | {row['tokens_per_second']:.1f} "
              f"| {row['answer_length_mean']:.1f} |")
    ours, theirs = rows["shiftlab"], rows["TRL"]
    ratio = {key: ours[key] / theirs[key] if theirs[key] > 0 else math.inf
             for key in ("samples_per_second", "tokens_per_second")}
    print()
    verdict = "met" if ratio["samples_per_second"] >= 1.5 else "MISSED"
    print(f"shiftlab / TRL: {ratio['samples_per_second']:.2f}x samples/s, {ratio['tokens_per_second']:.2f}x tokens/s "
          f"(goal >= 1.5x: {verdict})")
    for name, row in rows.items():
        if "seconds_rollout_median" in row:
            print(f"{name} step split (medians): rollout {row['seconds_rollout_median']:.3f} s, "
                  f"update and the rest {row['seconds_update_median']:.3f} s")
    if None not in others.values():
        busy = max(others.values()) > 0.05
        print("CPU time taken by other processes: "
              + ", ".join(f"{share * 100:.0f}% during the {name} run" for name, share in others.items())
              + (" -- the machine was busy: provisional figures, rerun" if busy else ""))
    print(f"order: {order[0]} ran first, then {order[1]}, in one process")

    settings = {key: getattr(args, key)
                for key in ("size", "prompts", "group", "max_new_tokens", "warmup", "steps", "micro_batch", "lora")}
    settings["model"] = str(args.model) if args.model else None
    report = {"machine": info, "settings": {**settings, "order": order}, "results": rows, "ratio": ratio}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
