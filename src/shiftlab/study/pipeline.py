"""The SFT-vs-RL study, stage by stage, resumable.

Stages, in order: `base` (build, and optionally pretrain, a model unless one is given; a pretrained
base is cached by its plan's hash and shared by later studies), `eval-base`, `init` (SFT on
in-distribution expert data), `eval-init`, then for every training seed `rl-seedS` (the RL branch,
evaluated every `steps / checkpoints` steps by the trainer itself), `sft-seedS` (the SFT branch, run
for as many steps as bring its training compute level with that seed's RL branch) and `eval-sft-seedS`
(each SFT checkpoint); then `leakage` (every evaluation episode checked against all training data) and
the report. All branches start from the one SFT initialization and every model meets the same
evaluation episodes, so comparisons between them are paired. A finished stage leaves
`stages/<name>.json`, so a rerun skips it; an interrupted stage resumes from its own checkpoints (the
trainers and the evaluation harness resume).

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
from shiftlab.study import leakage
from shiftlab.study.config import PAPER_PRESETS, StudyConfig
from shiftlab.study.report import summary_lines, write_report
from shiftlab.task import get_preset, ood_presets
from shiftlab.training.base_model import build_base_model
from shiftlab.training.compute import read_compute
from shiftlab.training.config import ConfigError, check_same_run, load_config, output_directory, to_yaml
from shiftlab.training.pretrain import PRETRAIN_DATA_SEED, SEED_STRIDE, PretrainConfig, cached_pretrain
from shiftlab.training.rl.config import RLConfig
from shiftlab.training.rl.trainer import evaluation_dir, run_rl
from shiftlab.training.sft import SFTRunConfig, run_sft

# Env seeds of episode k in each stage: disjoint ranges, so no evaluation episode is a training episode.
# Evaluation uses seeds 0.. like `shiftlab eval`, so the study's numbers compare with a plain evaluation.
# Training seed S moves every training range by S * SEED_STRIDE, so each seed trains on its own episodes.
EVAL_SEED = 0
INIT_DATA_SEED = 10_000_000
SFT_DATA_SEED = 20_000_000
RL_DATA_SEED = 30_000_000


def data_seed(stage_base: int, seed: int) -> int:
    return stage_base + SEED_STRIDE * seed


_NUMBER = (int, float)
# What later stages read of each kind of stage's record; a record without these, of these types, is
# not used. Per-seed stages are named KIND-seedS.
STAGE_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "base": {"model": str},
    "eval-base": {"eval": dict},
    "init": {"model": str, "flops": _NUMBER, "own_flops": _NUMBER, "steps": int, "checkpoints": list},
    "eval-init": {"eval": dict},
    "rl": {"model": str, "flops": _NUMBER, "points": list, "episodes_drawn": int},
    "sft": {"model": str, "flops": _NUMBER, "checkpoints": list},
    "eval-sft": {"points": list},
    "leakage": {"tasks": dict},
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
        raise ConfigError(f"preset {config.preset!r} runs on a real checkpoint: give --model PATH_OR_HUB_ID (for "
                          "SmolLM2: shiftlab import-model --gguf smollm2 --out models/smollm2)")
    output = output_directory(config.output_dir)
    check_same_run(config, output, [k for k in _as_dict(config) if k != "output_dir"])
    (output / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
    stages = output / "stages"
    stages.mkdir(exist_ok=True)
    eval_tasks = _eval_tasks(config)
    state: dict[str, Any] = {}

    def stage(name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = stages / f"{name}.json"
        if done.exists() and not done.is_file():
            raise ConfigError(f"{done} is not a file; remove it to run the {name} stage again")
        record = _read_stage(done, STAGE_FIELDS[name.split("-seed")[0]])
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
                        prompt=config.prompt, **config.env)

    base = stage("base", lambda: _base_model(config, output))
    if config.eval_base:
        stage("eval-base", lambda: {"eval": evaluate_model(base["model"], output / "eval" / "base")})
    mixture = base.get("pretraining", {}).get("mixture")
    init = stage("init", lambda: _sft_run(config, output / "init", base["model"], mixture, config.init_episodes,
                                          data_seed(INIT_DATA_SEED, config.seed), config.seed,
                                          {"save_total_limit": 1, **config.init}, count_start=False))
    stage("eval-init", lambda: {"eval": evaluate_model(init["model"], output / "eval" / "init")})

    branches: dict[str, dict[str, list]] = {"sft": {}, "rl": {}}
    for seed in config.seeds:
        rl = stage(f"rl-seed{seed}", lambda seed=seed: _rl_run(config, output / "rl" / f"seed-{seed}", init["model"],
                                                               eval_tasks, seed))
        sft_steps = _matched_sft_steps(config, init, rl)
        sft = stage(f"sft-seed{seed}", lambda seed=seed, sft_steps=sft_steps: _sft_run(
            config, output / "sft" / f"seed-{seed}", init["model"], mixture, config.sft_episodes, data_seed(SFT_DATA_SEED, seed), seed,
            {**config.sft, "max_steps": sft_steps, "save_steps": max(1, math.ceil(sft_steps / config.checkpoints))},
            count_start=True))

        def evaluate_sft(seed: int = seed, sft: dict[str, Any] = sft) -> dict[str, Any]:
            points = []
            for checkpoint in sft["checkpoints"]:
                name = Path(checkpoint["path"]).name
                points.append({"step": checkpoint["step"], "flops": checkpoint["flops"],
                               "eval": evaluate_model(checkpoint["path"],
                                                      output / "eval" / "sft" / f"seed-{seed}" / name)})
            return {"points": points}

        branches["sft"][str(seed)] = stage(f"eval-sft-seed{seed}", evaluate_sft)["points"]
        branches["rl"][str(seed)] = rl["points"]

    leakage = stage("leakage", lambda: _leakage(config, output, eval_tasks, base, state))["tasks"]
    results = {
        "preset": config.preset, "task": config.task, "env": dict(config.env),
        "model": config.model or base["model"],
        "eval_tasks": eval_tasks, "shifts": {t: get_preset(t).shift for t in eval_tasks}, "metric": config.metric,
        "training_seeds": list(config.seeds),
        "init": {"flops": init["flops"], "eval": state["eval-init"]["eval"]},
        "branches": branches, "leakage": leakage,
        "config": json.loads(json.dumps(_as_dict(config))), "seed_ranges": _seed_ranges(config),
        "versions": versions(), "machine": machine(),
        "timing": _timing(state),
        "started": state["base"].get("started"), "finished": _now(),
    }
    if "pretraining" in base:
        results["pretraining"] = {**base["pretraining"],
                                  "held_out": _held_out(config, eval_tasks, base["pretraining"]["sources"])}
    if "eval-base" in state:
        results["base"] = {"eval": state["eval-base"]["eval"]}
    paths = write_report(results, output / "report")
    for line in summary_lines(results):
        log(f"  {line}")
    log(f"[study] report: {paths['html']} and {paths['markdown']}")
    return {"paths": paths, "results": results}


def _eval_tasks(config: StudyConfig) -> list[str]:
    return config.eval_tasks or [config.task, *(p.name for p in ood_presets(config.task))]


def _timing(state: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage, the per-seed stages summed by kind (their count is in the config)."""
    timing: dict[str, float] = {}
    for name, record in state.items():
        kind = name.split("-seed")[0]
        timing[kind] = timing.get(kind, 0.0) + float(record["seconds"])
    return timing


def _base_model(config: StudyConfig, output: Path) -> dict[str, Any]:
    started = _now()
    if config.model is not None:
        return {"model": config.model, "flops": 0.0, "started": started}
    if config.pretrain is not None:
        # The base never sees the problems the study's OOD evaluations pose.
        held_out = [{"task": p.name, "env": dict(config.env)} for p in map(get_preset, _eval_tasks(config))
                    if p.shift != "id"]
        settings = {"kind": config.build_kind, "size": config.build_size, "seed": config.seed,
                    "prompt": config.prompt, **config.pretrain,
                    "held_out": [*config.pretrain.get("held_out", []), *held_out], "output_dir": str(output / "pretrain")}
        result = cached_pretrain(load_config(PretrainConfig, overrides=settings), config.cache_dir,
                                 report_to=["none"])
        plan = result["plan"]
        seen = {"hash": result["hash"], "cache": result["cache"], "reused": result["reused"],
                "mixture": result["mixture"], "sources": plan["sources"], "support": plan["settings"]["support"],
                "support_questions": plan["support"], "steps": result["steps"]}
        return {"model": result["model"], "flops": result["flops"], "started": started, "pretraining": seen}
    # The stage had not finished (or its record was damaged): what a build left there is made again,
    # identically, from the seed.
    shutil.rmtree(output / "base", ignore_errors=True)
    path = build_base_model(output / "base", kind=config.build_kind, size=config.build_size, seed=config.seed)
    return {"model": str(path), "flops": 0.0, "started": started}


def _held_out(config: StudyConfig, eval_tasks: list[str], sources: list[dict[str, Any]]) -> list[str]:
    """For each shifted evaluation, what of its shift the base saw: the sources that share the options
    setting the shift apart from the ID task, and how they differ from the evaluation in the options
    that make a problem (`Task.problem_keys`)."""
    reference = get_preset(config.task)
    lines = []
    for task in eval_tasks:
        preset = get_preset(task)
        if preset.shift == "id":
            continue
        owner = preset.owner
        evaluated = owner.resolved_options(task, config.env, evaluation=True)
        base = owner.resolved_options(reference.name, config.env, evaluation=True) if reference.task == preset.task else {}
        shift = {k: v for k, v in preset.env_kwargs.items() if base.get(k) != v}
        keys = owner.problem_keys or tuple(evaluated)
        seen = []
        for source in sources:
            if get_preset(source["task"]).task != preset.task:
                continue
            options = owner.resolved_options(source["task"], source["env"])
            if any(options.get(k) != v for k, v in shift.items()):
                continue
            seen.append(_options({k: options.get(k) for k in keys if options.get(k) != evaluated.get(k)})
                        or "the same problem (a leak)")
        problem = _options({k: evaluated.get(k) for k in keys})
        lines.append(f"{task} ({problem}): the base saw its shift ({_options(shift)}) only with "
                     + "; ".join(dict.fromkeys(seen)) if seen else f"{task} ({problem}): the base never saw its shift")
    return lines


def _options(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _leakage(config: StudyConfig, output: Path, eval_tasks: list[str], base: dict[str, Any],
             state: dict[str, Any]) -> dict[str, Any]:
    """Every evaluation episode's first prompt against the prompts of all training data: the base's
    mixture, the SFT data of the initialization and of each branch, and each RL branch's episodes."""
    training: set[str] = set()
    datasets = [output / "init" / "data", *(output / "sft" / f"seed-{s}" / "data" for s in config.seeds)]
    if "pretraining" in base:
        datasets.append(Path(base["pretraining"]["mixture"]))
    for path in datasets:
        if (path / "dataset_info.json").is_file():
            training |= leakage.dataset_prompts(path)
    for seed in config.seeds:
        drawn = state[f"rl-seed{seed}"]["episodes_drawn"]
        training |= set(leakage.first_prompts(config.task, range(drawn), data_seed(RL_DATA_SEED, seed), evaluation=False,
                                              env=config.env, prompt=config.prompt).values())
    evaluation = {task: leakage.first_prompts(task, range(config.eval_episodes), EVAL_SEED, evaluation=True,
                                              env=config.env, prompt=config.prompt) for task in eval_tasks}
    found = leakage.check(evaluation, training)
    for task, counts in found.items():
        if get_preset(task).shift != "id" and counts["found_in_training"]:
            raise RuntimeError(f"{counts['found_in_training']} of {counts['episodes']} {task} evaluation episodes "
                               "occur in the training data: the OOD measurement would not be held out")
    return {"tasks": found}


def _sft_run(config: StudyConfig, out: Path, model: str, mixture: str | None, episodes: int, data_seed: int,
             seed: int, settings: dict[str, Any], count_start: bool) -> dict[str, Any]:
    """An SFT run on ID expert data, with rows of the base's pretraining `mixture` mixed in when the
    settings ask for a `replay_share`. Compute counts from the SFT initialization on (pretraining, as
    in the paper, is not post-training compute), so the branch adds the init's compute (`count_start`).
    The init keeps its newest checkpoint only (every `save_steps`), enough to resume an interrupted run."""
    if settings.get("replay_share"):
        settings = {**settings, "replay": mixture}
    values = {"report_to": ["tensorboard"], "seed": seed, **settings,
              "model": model, "output_dir": str(out), "tasks": [config.task], "env": config.env,
              "prompt": config.prompt, "episodes": episodes,
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


def _rl_run(config: StudyConfig, out: Path, model: str, eval_tasks: list[str], seed: int) -> dict[str, Any]:
    steps = int(config.rl.get("steps", RLConfig.steps))
    values = {**config.rl, "seed": seed, "model": model, "output_dir": str(out), "task": config.task,
              "env": config.env, "prompt": config.prompt, "data_seed": data_seed(RL_DATA_SEED, seed),
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
    return {"model": str(result.final_model), "steps": result.steps, "flops": result.flops, "points": points,
            "episodes_drawn": result.episodes_drawn}


def _matched_sft_steps(config: StudyConfig, init: dict[str, Any], rl: dict[str, Any]) -> int:
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


def _seed_ranges(config: StudyConfig) -> dict[str, int]:
    return {"base and SFT init (model, data order)": config.seed,
            "pretraining (env seed of episode k of source i: this + 1,000,003 i + k)": data_seed(PRETRAIN_DATA_SEED,
                                                                                                 config.seed),
            "SFT init data (env seed of episode k: this + k)": data_seed(INIT_DATA_SEED, config.seed),
            f"continued SFT data of training seed S (this + {SEED_STRIDE:,} S + k)": SFT_DATA_SEED,
            f"RL episodes of training seed S (this + {SEED_STRIDE:,} S + k)": RL_DATA_SEED,
            "evaluation (env seed of episode k: this + k)": EVAL_SEED}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _progress(task: str, total: int, done):
    return tqdm(total=total, initial=len(done), desc=f"eval {task}", unit="episode", dynamic_ncols=True)
