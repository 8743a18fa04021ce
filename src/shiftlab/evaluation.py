"""In-distribution and out-of-distribution evaluation, side by side, resumable.

`evaluate` plays N episodes of each task with one policy and writes, under the output directory:
- `trajectories/<task>.jsonl`: one line per finished episode, appended as it finishes (a killed run
  loses nothing it had finished; a rerun skips those episodes and gives the same numbers);
- `results.json`: per task `episodes`, `success_rate`, `success_stderr`, `mean_reward`,
  `success_within_k` (k = 1 .. attempts), and where they apply `recognition_accuracy`,
  `step_accuracy` and `per_city`;
- `results.md`: the same as a table, one row per task variant.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from shiftlab.policies.base import Policy
from shiftlab.rollout import Trajectory, run_episodes
from shiftlab.tasks import get_preset

RUN_FILE = "run.json"


class EvaluationError(ValueError):
    """An evaluation that cannot start or resume (for example, a directory from another run)."""


def _stderr(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n) if n else 0.0


def _rate(records: list[dict], key: Callable[[dict], bool]) -> tuple[float, float]:
    hits = sum(1 for r in records if key(r))
    p = hits / len(records) if records else 0.0
    return p, _stderr(p, len(records))


def _max_answers_at_a_point(record: dict) -> int:
    counts: dict[int, int] = defaultdict(int)
    for turn in record["turns"]:
        counts[turn["point"]] += 1
    return max(counts.values(), default=0)


def task_metrics(records: list[dict], attempts: int) -> dict[str, Any]:
    """The figures of one task from its trajectory records."""
    success, stderr = _rate(records, lambda r: r["success"])
    metrics: dict[str, Any] = {
        "episodes": len(records),
        "success_rate": success,
        "success_stderr": stderr,
        "mean_reward": sum(r["return"] for r in records) / len(records) if records else 0.0,
        "success_within_k": [
            _rate(records, lambda r, k=k: r["success"] and _max_answers_at_a_point(r) <= k)[0]
            for k in range(1, attempts + 1)
        ],
    }
    first_turns = [r["turns"][0] for r in records if r["turns"]]
    if first_turns and all("cards_correct" in t for t in first_turns):
        metrics["recognition_accuracy"] = sum(t["cards_correct"] for t in first_turns) / len(first_turns)
    turns = [t for r in records for t in r["turns"]]
    if turns and "step_index" in turns[0]:
        metrics["step_accuracy"] = sum(t["outcome"] == "correct_action" for t in turns) / len(turns)
        cities: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            cities[r["start"].get("city", "?")].append(r)
        metrics["per_city"] = {city: task_metrics(rs, attempts) for city, rs in sorted(cities.items())
                               if city != "?"} if len(cities) > 1 else {}
        for city_metrics in metrics["per_city"].values():
            city_metrics.pop("per_city", None)
    return metrics


def _task_file(out: Path, task: str) -> Path:
    return out / "trajectories" / (task.replace("/", "__") + ".jsonl")


def _read_records(path: Path) -> dict[int, dict]:
    """Finished episodes already on disk. A last line cut short by a kill is removed, so that new
    records start on a line of their own."""
    records: dict[int, dict] = {}
    if not path.exists():
        return records
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            records[int(record["episode"])] = record
    return records


def _check_run(out: Path, run: dict[str, Any]) -> None:
    path = out / RUN_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        for key in ("policy", "seed", "env_overrides"):
            if previous.get(key) != run.get(key):
                raise EvaluationError(
                    f"{out} holds a run with {key}={previous.get(key)!r}, not {run.get(key)!r}; "
                    "use another --out or the same settings to resume"
                )
    path.write_text(json.dumps(run, indent=1))


def evaluate(
    tasks: Sequence[str],
    policy: Policy,
    episodes: int,
    out_dir: str | Path,
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[str, int, Iterable[int]], Any] | None = None,
    **env_overrides: Any,
) -> dict[str, dict[str, Any]]:
    """Evaluate `policy` on `tasks` (preset names), `episodes` episodes each, resuming what `out_dir` has."""
    presets = [get_preset(t) for t in tasks]
    if episodes < 1:
        raise EvaluationError("episodes must be at least 1")
    out = Path(out_dir)
    (out / "trajectories").mkdir(parents=True, exist_ok=True)
    _check_run(out, {"policy": policy.name, "seed": seed, "env_overrides": env_overrides, "tasks": list(tasks)})
    results: dict[str, dict[str, Any]] = {}
    for preset in presets:
        path = _task_file(out, preset.name)
        done = _read_records(path)
        todo = [i for i in range(episodes) if i not in done]
        bar = progress(preset.name, episodes, done) if progress else None
        with open(path, "a", encoding="utf-8") as handle:

            def write(trajectory: Trajectory, handle=handle, bar=bar, done=done) -> None:
                record = trajectory.to_json()
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                done[trajectory.episode] = record
                if bar is not None:
                    bar.update(1)

            run_episodes(preset, policy, todo, seed=seed, batch_size=batch_size, on_done=write, **env_overrides)
        if bar is not None:
            bar.close()
        records = [done[i] for i in range(episodes)]
        attempts = max(r["start"]["attempts_left"] for r in records)  # the full budget, as seen at reset
        results[preset.name] = {"shift": preset.shift, **task_metrics(records, attempts)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown_table(results))
    return results


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per task variant, ID and OOD side by side."""
    header = "| task | shift | episodes | success | mean reward | success@1 | success@max | recognition | step acc. |"
    lines = [header, "|" + "---|" * 9]
    for task, m in results.items():
        within = m["success_within_k"]
        optional = [f"{m[k]:.3f}" if k in m else "–" for k in ("recognition_accuracy", "step_accuracy")]
        lines.append(
            f"| {task} | {m['shift']} | {m['episodes']} | {m['success_rate']:.3f} ± {m['success_stderr']:.3f} | "
            f"{m['mean_reward']:+.3f} | {within[0]:.3f} | {within[-1]:.3f} | {optional[0]} | {optional[1]} |"
        )
        for city, c in m.get("per_city", {}).items():
            lines.append(f"| {task} · {city} | | {c['episodes']} | {c['success_rate']:.3f} ± {c['success_stderr']:.3f}"
                         f" | {c['mean_reward']:+.3f} | | | | {c.get('step_accuracy', 0):.3f} |")
    return "\n".join(lines) + "\n"
