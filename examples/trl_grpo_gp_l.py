"""GRPO on GP-L with TRL's own trainer: shiftlab's task as a TRL `environment_factory`.

    python examples/trl_grpo_gp_l.py --out runs/trl-gp-l                  # a tiny model built here
    python examples/trl_grpo_gp_l.py --model DIR --out runs/trl-gp-l      # e.g. SmolLM2 from
                                                                          # `shiftlab import-model --gguf smollm2`

Each step draws `--prompts` hands (env seeds 1_000_000 + k, as shiftlab's RL does) and `--group` answers
per hand; the model submits answers through the `submit_answer` tool, reads the verifier's feedback and
may revise, up to the hand's attempts. The episode's reward (the sum of the verifier's rewards, or 1/0
with `--rewards outcome`) is the GRPO reward. The model and tokenizer are saved to OUT/model; the script
then prints the `shiftlab eval` command that scores it on GP-L and its rule shift, and runs it with
`--eval-episodes N`.

The defaults are a starting point set by hand; none was tuned on any result.

Caveat: the model learns to answer in tool calls, while `shiftlab eval` asks it in plain chat (no tools)
and scores its text as the answer, so a model trained here answers there in the form it learned.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental in TRL 1.16

TASK = "gp-l"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint directory to train (default: build a tiny model under OUT/base)")
    parser.add_argument("--out", type=Path, default=Path("runs/trl-grpo-gp-l"), help="output directory")
    parser.add_argument("--steps", type=int, default=20, help="GRPO steps (default 20)")
    parser.add_argument("--prompts", type=int, default=2, help="hands per step (default 2)")
    parser.add_argument("--group", type=int, default=4, help="answers per hand, the GRPO group (default 4)")
    parser.add_argument("--max-completion-length", type=int, default=256,
                        help="tokens of one whole episode: answers and the tool's replies (default 256)")
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--rewards", choices=["per_attempt", "outcome"], default="per_attempt",
                        help="episode reward: the verifier's rewards summed (default), or 1 if solved else 0")
    parser.add_argument("--seed", type=int, default=0, help="training seed (sampling, shuffling)")
    parser.add_argument("--eval-episodes", type=int, default=0,
                        help="run the printed shiftlab eval with this many episodes per task (default 0: only print)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.prompts < 1 or args.group < 2 or args.max_completion_length < 1:
        parser.error("need --steps >= 1, --prompts >= 1, --group >= 2 and --max-completion-length >= 1")
    return args


def eval_command(model_dir: Path, out: Path, episodes: int) -> list[str]:
    return ["shiftlab", "eval", "--policy", f"hf:{model_dir}", "--tasks", f"{TASK},{TASK}/rule-ood",
            "--episodes", str(episodes), "--out", str(out)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from shiftlab.integrations.trl import (
        attempt_budget,
        environment_factory,
        format_reward,
        prepare_tokenizer,
        prompt_dataset,
    )
    from shiftlab.training.base_model import build_base_model

    out = args.out
    model_dir = args.model or build_base_model(out / "base", kind="lm", size="tiny", seed=0)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True)
    batch = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(out / "trl"), max_steps=args.steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1, num_generations=args.group, max_completion_length=args.max_completion_length,
        max_tool_calling_iterations=attempt_budget(TASK), temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", beta=0.0, loss_type="dapo",
        activation_checkpointing=False, bf16=False, fp16=False, use_cpu=not torch.cuda.is_available(),
        seed=args.seed, report_to="none", save_strategy="no", eval_strategy="no", logging_steps=1,
        disable_tqdm=True, log_completions=False, dataloader_num_workers=0,
        reward_weights=[0.0],  # format_reward is logged, not trained on; get_reward gets weight 1 from TRL
    )
    trainer = GRPOTrainer(
        model=model, args=config, processing_class=tokenizer,
        reward_funcs=[format_reward], train_dataset=prompt_dataset(TASK, args.steps * args.prompts),
        environment_factory=environment_factory(TASK, rewards=args.rewards),
    )
    trainer.train()
    saved = out / "model"
    trainer.save_model(str(saved))
    tokenizer.save_pretrained(str(saved))
    history = [e for e in trainer.state.log_history if "reward" in e]

    episodes = args.eval_episodes or 100
    command = eval_command(saved, out / "eval", episodes)
    print(f"saved the trained model to {saved}")
    print("evaluate it on GP-L and its rule shift with:")
    print("  " + shlex.join(command))
    result: dict[str, Any] = {"model": saved, "log": history, "eval_command": command}
    if args.eval_episodes:  # the printed command, run in this process
        from shiftlab import cli

        if cli.main([*command[1:], "--quiet"]) != 0:
            raise SystemExit("shiftlab eval failed")
        result["eval"] = json.loads((out / "eval" / "results.json").read_text(encoding="utf-8"))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
