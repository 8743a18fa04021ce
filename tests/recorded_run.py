"""A fingerprint of what shiftlab does for fixed seeds, recorded before the task-registry refactor
(issue 14) and compared by `test_recorded_run.py` ever since: trajectories of the oracle policies on
every paper preset, the tokenizer corpus, pretraining and SFT data, a built model's tokenizer and
weights, a tiny model's greedy answers, and short SFT, GRPO and PPO runs.

`python tests/recorded_run.py` rewrites `tests/data/recorded_run.json`; do that only when a change of
behaviour is intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

RECORD = Path(__file__).parent / "data" / "recorded_run.json"
# The two tasks of the paper, whose behaviour the refactor had to keep; tasks added later are not
# part of the fingerprint.
PAPER_PRESETS = ("gp-l", "gp-l/rule-ood", "gp-vl", "gp-vl/rule-ood", "gp-vl/visual-ood", "virl-l",
                 "virl-l/rule-ood", "virl-vl", "virl-vl/rule-ood", "virl-vl/visual-ood",
                 "virl-vl/visual-ood-extended")
PAPER_TASKS = ("general-points", "virl")
SMALL_IMAGES = {"gp": {"resolution": 64}, "virl": {"resolution": 32}}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _small(name: str) -> dict:
    return SMALL_IMAGES["gp" if name.startswith("gp") else "virl"] if "-vl" in name else {}


def oracle_trajectories() -> dict:
    from shiftlab.policies import ExpertPolicy, RandomPolicy
    from shiftlab.rollout import run_episodes
    from shiftlab.task import get_preset

    out = {}
    for name in PAPER_PRESETS:
        for policy in (ExpertPolicy(), RandomPolicy(3)):
            trajectories = run_episodes(get_preset(name), policy, range(3), seed=11, batch_size=2, **_small(name))
            records = sorted((t.to_json() for t in trajectories), key=lambda r: r["episode"])
            out[f"{name}|{policy.name}"] = {"digest": _digest(records),
                                            "returns": [r["return"] for r in records],
                                            "first_response": records[0]["turns"][0]["response"]}
    return out


def evaluation_results(tmp: Path) -> dict:
    from shiftlab.evaluation import evaluate
    from shiftlab.policies import RandomPolicy

    results = evaluate(["gp-l", "gp-l/rule-ood", "virl-l", "virl-l/rule-ood"], RandomPolicy(1), 6, tmp / "eval", seed=5)
    return json.loads(json.dumps(results))


def data_fingerprints() -> dict:
    import datasets

    from shiftlab.training.base_model import task_corpus
    from shiftlab.training.expert_data import Source, build_dataset
    from shiftlab.training.pretrain import mixture, support_rows

    corpus = task_corpus(episodes_per_task=2, seed=3, tasks=PAPER_TASKS)
    sft = build_dataset([Source("gp-l", 6, revisions=1), Source("virl-l", 2), Source("gp-vl", 2, {"resolution": 64})],
                        seed=4)
    sft_rows = [{k: v for k, v in row.items() if k != "images"} for row in sft]
    undecoded = sft.cast_column("images", datasets.List(datasets.Image(decode=False)))
    images = [hashlib.sha256(image["bytes"]).hexdigest()[:16] for row in undecoded for image in row["images"]]
    pretraining = build_dataset(mixture("vlm", 4, tasks=PAPER_TASKS)[::3], seed=2,
                                extra_rows=support_rows(10, seed=2, images=True, tasks=PAPER_TASKS))
    pretraining_text = [row["messages"] for row in pretraining.select_columns(["messages"])]
    return {"corpus": {"lines": len(corpus), "digest": _digest(corpus)},
            "sft_data": {"rows": len(sft_rows), "digest": _digest(sft_rows), "images": _digest(images)},
            "pretraining": {"rows": len(pretraining_text), "digest": _digest(pretraining_text)}}


def model_runs(tmp: Path) -> dict:
    import torch
    from safetensors.torch import load_file

    from shiftlab.evaluation import evaluate
    from shiftlab.policies.hf import HFPolicy
    from shiftlab.training.base_model import build_base_model
    from shiftlab.training.config import load_config
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl
    from shiftlab.training.sft import SFTRunConfig, run_sft

    model = build_base_model(tmp / "model", kind="lm", size="tiny", seed=7, tasks=PAPER_TASKS)
    vocab = json.loads((model / "tokenizer.json").read_text())["model"]["vocab"]
    weights = load_file(str(model / "model.safetensors"))
    weight_sum = float(sum(float(w.double().abs().sum()) for w in weights.values()))
    policy = HFPolicy(str(model), max_new_tokens=20, batch_size=4)
    greedy = evaluate(["gp-l", "virl-l"], policy, 2, tmp / "greedy", seed=9)
    answers = {}
    for path in sorted((tmp / "greedy" / "trajectories").glob("*.jsonl")):
        answers[path.stem] = [json.loads(line)["turns"][0]["response"] for line in path.read_text().splitlines()]

    sft = run_sft(load_config(SFTRunConfig, overrides={
        "model": str(model), "output_dir": str(tmp / "sft"), "tasks": ["gp-l"], "episodes": 16, "max_steps": 3,
        "batch_size": 4, "learning_rate": 1e-3, "report_to": ["none"], "save_steps": 1000, "logging_steps": 1}))
    runs = {"sft": {"losses": [e["loss"] for e in sft.log if "loss" in e], "tokens": sft.tokens}}
    for algorithm, extra in (("grpo", {"task": "virl-l", "group_size": 4, "kl_coef": 0.05, "weight_decay": 0.1}),
                             ("ppo", {"group_size": 1, "value_hidden": [16], "epochs": 2})):
        with torch.random.fork_rng(devices=[]):
            result = run_rl(load_config(RLConfig, overrides={
                "model": str(model), "output_dir": str(tmp / algorithm), "task": "gp-l", "algorithm": algorithm,
                "steps": 2, "prompts_per_step": 2, "max_new_tokens": 12, "eval_steps": 0, "save_steps": 1000,
                "report_to": ["none"], "learning_rate": 1e-3, **extra}), progress=False)
        train = [e for e in result.log if e["kind"] == "train"]
        keys = [k for k in train[0] if not k.startswith("seconds") and not k.endswith("per_second")]
        runs[algorithm] = {key: [e[key] for e in train] for key in keys}
        runs[algorithm]["flops"] = result.flops
    return {"vocab": {"size": len(vocab), "digest": _digest(sorted(vocab.items()))},
            "weights": {"tensors": len(weights), "abs_sum": weight_sum}, "greedy": answers,
            "greedy_results": json.loads(json.dumps(greedy)), "runs": runs}


def snapshot() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        return {"oracle": oracle_trajectories(), "evaluation": evaluation_results(tmp), "data": data_fingerprints(),
                "models": model_runs(tmp)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    RECORD.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")
