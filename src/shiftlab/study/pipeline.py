"""The SFT-vs-RL study, stage by stage, resumable.

Stages, in order: `base` (build, and optionally pretrain, a model unless one is given), `eval-base`,
`init` (SFT on in-distribution expert data, for the answer format), `eval-init`, `rl` (the RL branch,
evaluated every `steps / checkpoints` steps by the trainer itself), `sft` (the SFT branch, run for as
many steps as bring its training compute level with the RL branch's total), `eval-sft` (each SFT
checkpoint), `report`. A finished stage leaves `stages/<name>.json`, so a rerun skips it; an
interrupted stage resumes from its own checkpoints (the trainers and the evaluation harness resume).

Compute follows the paper (App. C.3): X_SFT = 6N(D_init + D_SFT) and X_RL = 6N(D_init + D_RL) + 2N D_buffer,
with D_buffer the tokens run forward in rollouts and scoring passes.
"""

from __future__ import annotations

import datetime
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from shiftlab.evaluation import evaluate
from shiftlab.policies.hf import HFPolicy
from shiftlab.provenance import machine, versions
from shiftlab.study.config import PAPER_PRESETS, StudyConfig
from shiftlab.study.report import summary_lines, write_report
from shiftlab.task import get_preset, ood_presets
from shiftlab.training.base_model import build_base_model
from shiftlab.training.compute import read_compute
from shiftlab.training.config import ConfigError, check_same_run, load_config, output_directory, to_yaml
from shiftlab.training.pretrain import PretrainConfig, pretrain
from shiftlab.training.rl.config import RLConfig
from shiftlab.training.rl.trainer import evaluation_dir, run_rl
from shiftlab.training.sft import SFTRunConfig, run_sft

# Env seeds of episode k in each stage: disjoint ranges, so no evaluation episode is a training episode.
# Evaluation uses seeds 0.. like `shiftlab eval`, so the study's numbers compare with a plain evaluation.
EVAL_SEED = 0
INIT_DATA_SEED = 10_000_000
SFT_DATA_SEED = 20_000_000
RL_DATA_SEED = 30_000_000


_NUMBER = (int, float)
# What later stages read of each stage's record; a record without these, of these types, is not used.
STAGE_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "base": {"model": str},
    "eval-base": {"eval": dict},
    "init": {"model": str, "flops": _NUMBER, "own_flops": _NUMBER, "steps": int, "checkpoints": list},
    "eval-init": {"eval": dict},
    "rl": {"model": str, "flops": _NUMBER, "points": list},
    "sft": {"model": str, "flops": _NUMBER, "checkpoints": list},
    "eval-sft": {"points": list},
}


def _read_stage(path: Path, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any] | None:
    """A finished stage's record; None when the stage has not finished, or its record was damaged since
    (the stage then runs again, resuming from its own checkpoints)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("seconds"), _NUMBER):
        return None
    if any(not isinstance(record.get(key), kind) or isinstance(record.get(key), bool) for key, kind in fields.items()):
        return None
    return record


def run_study(config: StudyConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage; returns the report's paths and the results."""
    config.validate()
    if config.model is None and config.preset in PAPER_PRESETS:
        raise ConfigError(f"preset {config.preset!r} reproduces the paper on a real checkpoint: give --model")
    output = output_directory(config.output_dir)
    check_same_run(config, output, [k for k in _as_dict(config) if k != "output_dir"])
    (output / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
    stages = output / "stages"
    stages.mkdir(exist_ok=True)
    eval_tasks = config.eval_tasks or [config.task, *(p.name for p in ood_presets(config.task))]
    state: dict[str, Any] = {}

    def stage(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = stages / f"{name}.json"
        if done.exists() and not done.is_file():
            raise ConfigError(f"{done} is not a file; remove it to run the {name} stage again")
        record = _read_stage(done, STAGE_FIELDS[name])
        if record is not None:
            log(f"[study] {name}: done before, skipped")
            state[name] = record
            return record
        log(f"[study] {name} ...")
        started = time.perf_counter()
        result = {**work(), "seconds": time.perf_counter() - started}
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.rename(done)
        state[name] = result
        return result

    def evaluate_model(model: str, out: Path) -> dict[str, Any]:
        policy = HFPolicy(model, max_new_tokens=int(config.rl.get("max_new_tokens", 128)), temperature=0.0,
                          batch_size=int(config.rl.get("rollout_batch_size", 64)), seed=config.seed)
        return evaluate(eval_tasks, policy, config.eval_episodes, out, seed=EVAL_SEED, progress=_progress,
                        **config.env)

    base = stage("base", lambda: _base_model(config, output))
    if config.eval_base:
        stage("eval-base", lambda: {"eval": evaluate_model(base["model"], output / "eval" / "base")})
    init = stage("init", lambda: _sft_run(config, output / "init", base["model"], config.init_episodes,
                                          INIT_DATA_SEED + config.seed, config.init, count_start=False))
    stage("eval-init", lambda: {"eval": evaluate_model(init["model"], output / "eval" / "init")})
    rl = stage("rl", lambda: _rl_run(config, output / "rl", init["model"], eval_tasks))
    sft_steps = _matched_sft_steps(config, output, init, rl)
    sft = stage("sft", lambda: _sft_run(config, output / "sft", init["model"], config.sft_episodes,
                                        SFT_DATA_SEED + config.seed,
                                        {**config.sft, "max_steps": sft_steps,
                                         "save_steps": max(1, math.ceil(sft_steps / config.checkpoints))},
                                        count_start=True))

    def evaluate_sft() -> dict[str, Any]:
        points = []
        for checkpoint in sft["checkpoints"]:
            name = Path(checkpoint["path"]).name
            points.append({"step": checkpoint["step"], "flops": checkpoint["flops"],
                           "eval": evaluate_model(checkpoint["path"], output / "eval" / "sft" / name)})
        return {"points": points}

    sft_points = stage("eval-sft", evaluate_sft)["points"]
    results = {
        "preset": config.preset, "task": config.task, "env": dict(config.env),
        "model": config.model or base["model"],
        "eval_tasks": eval_tasks, "shifts": {t: get_preset(t).shift for t in eval_tasks}, "metric": config.metric,
        "init": {"flops": init["flops"], "eval": state["eval-init"]["eval"]},
        "branches": {"sft": sft_points, "rl": rl["points"]},
        "config": json.loads(json.dumps(_as_dict(config))), "seeds": _seeds(config),
        "versions": versions(), "machine": machine(),
        "timing": {name: state[name]["seconds"] for name in state},
        "started": state["base"].get("started"), "finished": _now(),
    }
    if "eval-base" in state:
        results["base"] = {"eval": state["eval-base"]["eval"]}
    paths = write_report(results, output / "report")
    for line in summary_lines(results):
        log(f"  {line}")
    log(f"[study] report: {paths['html']} and {paths['markdown']}")
    return {"paths": paths, "results": results}


def _base_model(config: StudyConfig, output: Path) -> dict[str, Any]:
    started = _now()
    if config.model is not None:
        return {"model": config.model, "flops": 0.0, "started": started}
    if config.pretrain is not None:
        settings = {"kind": config.build_kind, "size": config.build_size, "seed": config.seed, **config.pretrain,
                    "output_dir": str(output / "pretrain")}
        result = pretrain(load_config(PretrainConfig, overrides=settings), report_to=["none"])
        return {"model": str(result.final_model), "flops": result.flops, "started": started}
    # The stage had not finished (or its record was damaged): what a build left there is made again,
    # identically, from the seed.
    shutil.rmtree(output / "base", ignore_errors=True)
    path = build_base_model(output / "base", kind=config.build_kind, size=config.build_size, seed=config.seed)
    return {"model": str(path), "flops": 0.0, "started": started}


def _sft_run(config: StudyConfig, out: Path, model: str, episodes: int, data_seed: int,
             settings: dict[str, Any], count_start: bool) -> dict[str, Any]:
    """An SFT run on ID expert data. Compute counts from the SFT initialization on (pretraining, as in
    the paper, is not post-training compute), so the branch adds the init's compute (`count_start`)."""
    values = {"save_steps": 1000, "report_to": ["tensorboard"], "seed": config.seed, **settings,
              "model": model, "output_dir": str(out), "tasks": [config.task], "env": config.env, "episodes": episodes,
              "data_seed": data_seed}
    result = run_sft(load_config(SFTRunConfig, overrides=values))
    checkpoints = []
    start = float((read_compute(model) or {}).get("flops", 0.0)) if count_start else 0.0
    for path in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])):
        record = read_compute(path)
        if record is not None:
            checkpoints.append({"path": str(path), "step": record["step"],
                                "flops": start + float(record["flops"])})
    return {"model": str(result.final_model), "steps": result.steps, "tokens": result.tokens,
            "flops": start + result.flops, "own_flops": result.flops, "checkpoints": checkpoints}


def _rl_run(config: StudyConfig, out: Path, model: str, eval_tasks: list[str]) -> dict[str, Any]:
    steps = int(config.rl.get("steps", RLConfig.steps))
    values = {"seed": config.seed, **config.rl, "model": model, "output_dir": str(out), "task": config.task,
              "env": config.env, "data_seed": RL_DATA_SEED + config.seed,
              "eval_tasks": eval_tasks, "eval_episodes": config.eval_episodes,
              "eval_steps": max(1, math.ceil(steps / config.checkpoints)), "eval_at_start": False,
              "save_steps": max(1, math.ceil(steps / config.checkpoints))}
    result = run_rl(load_config(RLConfig, overrides=values))
    # Each evaluation's figures come from its own results.json; the log gives its step and compute.
    points = []
    for entry in result.log:
        if entry.get("kind") == "eval":
            results = evaluation_dir(out, entry["step"]) / "results.json"
            try:
                metrics = json.loads(results.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ConfigError(f"cannot read the RL evaluation {results}: {error}") from None
            points.append({"step": entry["step"], "flops": entry["flops"], "eval": metrics})
    return {"model": str(result.final_model), "steps": result.steps, "flops": result.flops, "points": points}


def _matched_sft_steps(config: StudyConfig, output: Path, init: dict[str, Any], rl: dict[str, Any]) -> int:
    """SFT steps whose 6ND compute brings the SFT branch level with the RL branch's total (training and
    rollouts), from the init's measured tokens per step on the same kind of data."""
    budget = rl["flops"] - init["flops"]
    def rows_per_step(settings: dict[str, Any]) -> int:
        return int(settings.get("batch_size", 8)) * int(settings.get("grad_accum", 1))

    per_step = init["own_flops"] / max(init["steps"], 1) * rows_per_step(config.sft) / rows_per_step(config.init)
    if per_step <= 0:
        raise RuntimeError("the SFT initialization recorded no compute; cannot match the branches")
    return max(config.checkpoints, round(budget / per_step))


def _as_dict(config: StudyConfig) -> dict[str, Any]:
    return asdict(config)


def _seeds(config: StudyConfig) -> dict[str, int]:
    return {"study (model, data order, sampling)": config.seed,
            "SFT init data (env seed of episode k)": INIT_DATA_SEED + config.seed,
            "continued SFT data (env seed of episode k)": SFT_DATA_SEED + config.seed,
            "RL episodes (env seed of episode k)": RL_DATA_SEED + config.seed,
            "evaluation (env seed of episode k)": EVAL_SEED}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _progress(task: str, total: int, done):
    return tqdm(total=total, initial=len(done), desc=f"eval {task}", unit="episode", dynamic_ncols=True)
