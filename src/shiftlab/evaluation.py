"""In-distribution and out-of-distribution evaluation, side by side, resumable.

`evaluate` plays N episodes of each task with one policy and writes, under the output directory:
- `trajectories/<task>.jsonl`: one line per finished episode, appended as it finishes (a killed run
  loses nothing it had finished; a rerun skips those episodes and gives the same numbers);
- `results.json`: per task `episodes`, `success_rate`, `success_stderr`, `mean_reward`,
  `success_within_k` (k = 1 .. attempts), then the task's own figures (`Task.metrics`: e.g. how often
  the cards were read right, or the share of correct moves and the figures per city), and
  `episode_success` (0/1 per episode index: every model meets the same episodes, so two models'
  lists are paired samples) and `episode_<metric>` for each of the task's headline metrics;
- `results.md`: the same as a table, one row per task variant, breakdowns (per city) below it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from shiftlab.errors import DependencyError, InputError
from shiftlab.metrics import episode_metrics
from shiftlab.policies.base import Policy
from shiftlab.rollout import MAX_ANSWER_CHARS, iter_episodes
from shiftlab.task import Task, check_env_options, check_prompt_style, get_preset

RUN_FILE = "run.json"


class EvaluationError(InputError):
    """An evaluation that cannot start or resume (for example, a directory from another run)."""


def task_metrics(records: list[dict], attempts: int, task: Task) -> dict[str, Any]:
    """The figures of one preset from its trajectory summaries: the generic ones, then the task's own."""
    return {**episode_metrics(records, attempts), **task.metrics(records, attempts)}


def _task_file(out: Path, task: str) -> Path:
    return out / "trajectories" / (task.replace("/", "__") + ".jsonl")


# What the figures need of a finished episode; the conversations stay on disk, so memory grows with
# a few numbers per episode, not with what the model wrote.
_HEAVY_TURN_KEYS = ("messages", "response", "token_ids", "logprobs", "feedback")


def _summary(record: dict) -> dict:
    turns = [{k: v for k, v in t.items() if k not in _HEAVY_TURN_KEYS} for t in record["turns"]]
    return {**record, "turns": turns}


def _is_record(record: Any, task: str) -> bool:
    """A line of this task's file that the figures can use: an object of the task with an int episode
    index, a success flag, a return and its turns."""
    return (
        isinstance(record, dict)
        and record.get("task") == task
        and type(record.get("episode")) is int
        and isinstance(record.get("success"), bool)
        and isinstance(record.get("return"), (int, float))
        and isinstance(record.get("start"), dict)
        and type(record["start"].get("attempts_left")) is int
        and isinstance(record.get("turns"), list)
        and all(isinstance(t, dict) and type(t.get("point")) is int for t in record["turns"])
    )


def _drop_cut_last_line(path: Path) -> None:
    """A last line cut short by a kill is removed, so that new records start on a line of their own.
    Only the file's tail is read."""
    with open(path, "r+b") as handle:
        end = handle.seek(0, 2)
        if end == 0:
            return
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return
        position = end
        while position > 0:
            step = min(1 << 16, position)
            position -= step
            handle.seek(position)
            newline = handle.read(step).rfind(b"\n")
            if newline >= 0:
                handle.truncate(position + newline + 1)
                return
        handle.truncate(0)


def _read_records(path: Path, task: str, episodes: int) -> dict[int, dict]:
    """Summaries of the finished episodes on disk. Lines that are not records of this task (corrupt,
    hand-edited, another run's) are skipped and those episodes played again."""
    records: dict[int, dict] = {}
    if not path.exists():
        return records
    if path.is_dir():
        raise EvaluationError(f"{path} is a directory, not a trajectory file")
    _drop_cut_last_line(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if _is_record(record, task) and 0 <= record["episode"] < episodes:
                records[record["episode"]] = _summary(record)
    return records


def _check_run(out: Path, run: dict[str, Any]) -> None:
    path = out / RUN_FILE
    if path.exists() and path.stat().st_size > 0:  # empty: a write that a full disk cut short
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            raise EvaluationError(f"{path} is not readable run settings ({error}); use another --out") from None
        if not isinstance(previous, dict):
            raise EvaluationError(f"{path} is not readable run settings; use another --out")
        previous.setdefault("max_response_chars", MAX_ANSWER_CHARS)  # written before the cap was recorded
        for key in ("policy", "seed", "env_overrides", "max_response_chars", "prompt"):
            if previous.get(key) != run.get(key):
                raise EvaluationError(
                    f"{out} holds a run with {key}={previous.get(key)!r}, not {run.get(key)!r}; "
                    "use another --out or the same settings to resume"
                )
    _write_atomically(path, json.dumps(run, indent=1))


def _write_atomically(path: Path, text: str) -> None:
    """Write beside, then rename: a failed write (a full disk) leaves the old file, never a cut one."""
    if path.is_dir():
        raise EvaluationError(f"{path} is a directory; remove it or use another --out")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise DependencyError(f"cannot write {path}: {error.strerror or error}") from None


MAX_BATCH_SIZE = 1024


def evaluate(
    tasks: Sequence[str],
    policy: Policy,
    episodes: int,
    out_dir: str | Path,
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[str, int, Iterable[int]], Any] | None = None,
    max_response_chars: int = MAX_ANSWER_CHARS,
    prompt: str | None = None,
    **env_overrides: Any,
) -> dict[str, dict[str, Any]]:
    """Evaluate `policy` on `tasks` (preset names), `episodes` episodes each, resuming what `out_dir` has;
    `prompt` names the tasks' prompt style (None: each preset's own).

    Episodes stream: the work list is never built, finished episodes go to disk as they finish, and
    memory holds a summary per finished episode, so any count is safe to ask for (and to interrupt)."""
    presets = [get_preset(t) for t in tasks]
    if not presets:
        raise EvaluationError("no tasks to evaluate")
    if type(episodes) is not int or episodes < 1:
        raise EvaluationError(f"episodes must be a positive int, not {episodes!r}")
    if type(seed) is not int or seed < 0:
        raise EvaluationError(f"seed must be a non-negative int, not {seed!r}")
    if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise EvaluationError(f"batch size must be from 1 to {MAX_BATCH_SIZE}, not {batch_size!r}")
    if type(max_response_chars) is not int or max_response_chars < 1:
        raise EvaluationError(f"max_response_chars must be a positive int, not {max_response_chars!r}")
    try:
        check_env_options([p.name for p in presets], env_overrides)
        check_prompt_style([p.name for p in presets], prompt)
    except ValueError as error:
        raise EvaluationError(str(error)) from None
    out = Path(out_dir)
    try:
        (out / "trajectories").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EvaluationError(f"cannot create {out / 'trajectories'}: {error.strerror}") from None
    run = {"policy": policy.name, "seed": seed, "env_overrides": env_overrides, "tasks": list(tasks),
           "max_response_chars": max_response_chars}
    if prompt is not None:
        run["prompt"] = prompt
    _check_run(out, run)
    results: dict[str, dict[str, Any]] = {}
    for preset in {p.name: p for p in presets}.values():
        path = _task_file(out, preset.name)
        done = _read_records(path, preset.name, episodes)
        todo = (i for i in range(episodes) if i not in done)
        bar = progress(preset.name, episodes, done) if progress else None
        answers = [0]

        def on_turn(count: int, bar=bar, answers=answers) -> None:
            answers[0] += count
            if bar is not None and hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{answers[0]} answers")
        try:
            with open(path, "a", encoding="utf-8") as handle:
                for trajectory in iter_episodes(preset, policy, todo, seed=seed, batch_size=batch_size,
                                                max_response_chars=max_response_chars, prompt=prompt,
                                                on_turn=on_turn, **env_overrides):
                    record = trajectory.to_json()
                    handle.write(json.dumps(record) + "\n")
                    handle.flush()
                    done[trajectory.episode] = _summary(record)
                    if bar is not None:
                        bar.update(1)
        except OSError as error:
            raise DependencyError(f"cannot write {path}: {error.strerror or error}") from None
        finally:
            if bar is not None:
                bar.close()
        records = [done[i] for i in range(episodes)]
        attempts = max(r["start"]["attempts_left"] for r in records)  # the full budget, as seen at reset
        results[preset.name] = {"shift": preset.shift, **task_metrics(records, attempts, preset.owner),
                                **_per_episode(records, attempts, preset.owner)}
    _write_atomically(out / "results.json", json.dumps(results, indent=1))
    _write_atomically(out / "results.md", markdown_table(results))
    return results


def _per_episode(records: list[dict], attempts: int, task: Task) -> dict[str, list]:
    """Each episode's success and its value of the task's headline metrics, in episode order: the
    paired samples a comparison of two models on these episodes needs."""
    out: dict[str, list] = {"episode_success": [int(r["success"]) for r in records]}
    for metric in task.report_metrics:
        values = [task.metrics([r], attempts).get(metric) for r in records]
        if all(isinstance(v, (int, float)) for v in values):
            out[f"episode_{metric}"] = values
    return out


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The single-number figures of one preset's results (what a log line or a plot can take)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "episodes"}


def breakdowns(metrics: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Figures a task reports per subset (per city, say): entries whose value maps names to metrics."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, dict) and v and all(isinstance(m, dict) for m in v.values())}


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per task variant, ID and OOD side by side; the tasks' own figures in their own columns,
    and any breakdown (per city) in rows below its task."""
    generic = {"success_rate", "success_stderr", "mean_reward"}
    extra = list(dict.fromkeys(k for m in results.values() for k in scalar_metrics(m) if k not in generic))
    header = ["task", "shift", "episodes", "success", "mean reward", "success@1", "success@max",
              *(k.replace("_", " ") for k in extra)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, shift: str, m: dict[str, Any], summary: bool) -> str:
        within = m.get("success_within_k") or [0.0]
        cells = [name, shift, str(m["episodes"]), f"{m['success_rate']:.3f} ± {m['success_stderr']:.3f}",
                 f"{m['mean_reward']:+.3f}", f"{within[0]:.3f}" if summary else "",
                 f"{within[-1]:.3f}" if summary else "",
                 *(f"{m[k]:.3f}" if k in m else "–" for k in extra)]
        return "| " + " | ".join(cells) + " |"

    for task, m in results.items():
        lines.append(row(task, m["shift"], m, True))
        for groups in breakdowns(m).values():
            for name, sub in groups.items():
                lines.append(row(f"{task} · {name}", "", sub, False))
    return "\n".join(lines) + "\n"
