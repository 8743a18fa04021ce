"""shiftlab's task presets as verl data, reward function and episodes, written against verl 0.9.1.

    shiftlab export verl --tasks gp-l,gp-l/rule-ood --episodes 1000 --split train --out data/verl
    python -m verl.trainer.main_ppo data.train_files=data/verl/train.parquet \\
        reward.custom_reward_function.path=pkg://shiftlab.integrations.verl ...   (examples/verl/)

What verl reads (read off verl 0.9.1: `utils/dataset/rl_dataset.py`, `experimental/reward_loop/reward_manager/
naive.py`, `trainer/ppo/ray_trainer.py`):
- a parquet row per episode: `data_source`, `prompt` (chat messages, string contents; an image observation
  is the placeholder `<image>` in the text and `{"bytes": PNG}` in `images`, in order), `ability`,
  `reward_model.ground_truth` and `extra_info` (`index`, `split`, `interaction_kwargs`). Validation metrics
  are grouped by `data_source`, so each preset gets its own tag (`shiftlab/gp-l`, `shiftlab/gp-l/rule-ood`)
  and ID and OOD land side by side (`val-core/shiftlab/gp-l/rule-ood/acc/mean@1`).
- `compute_score(data_source, solution_str, ground_truth, extra_info)`: the naive reward manager takes a
  float or a dict with "score"; every other key of the dict becomes a per-sample metric, "acc" the one
  validation leads with. The keys must be the same for every sample of a batch (verl stacks them), so
  both paths below return `result_fields`'s keys whatever the task.

`ground_truth` is the episode itself (`EpisodeSpec` as JSON: preset, seed, episode index, evaluation
options, prompt style), so the reward function and the episode drivers rebuild it exactly; no answer is
stored. Three ways to train on it:
- one turn (verl's default `single_turn_agent`): `compute_score` resets the episode and scores the
  answer with one environment step;
- multi-turn, verl 0.9.1: `shiftlab.integrations.verl_agent_loop.EnvAgentLoop` (registered as
  `shiftlab_env`), which plays revisions and decision points, new images included, through
  `play_episode` below and hands verl the episode's reward itself;
- multi-turn, verl 0.4-0.7 (their `BaseInteraction` was removed in 0.8):
  `shiftlab.integrations.verl_interaction.EnvInteraction`, text feedback only.

This module needs no verl (the CLI and the tests import it); it knows the `Task` protocol, not any task.
Answers are untrusted strings: bounded like the rollout bounds them, never evaluated, and reach only the
task's verifier.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from shiftlab import __version__
from shiftlab.integrations import episode
from shiftlab.integrations.episode import EpisodeError, EpisodeSpec, _plain
from shiftlab.messages import Message, text_of
from shiftlab.rollout import json_safe
from shiftlab.task import MAX_EPISODES, TaskPreset, get_preset

VERL_VERSION = "0.9.1"  # the verl whose sources this module and examples/verl/ were checked against
SOURCE_PREFIX = "shiftlab"  # data_source = "<prefix>/<preset>"
AGENT_LOOP = "shiftlab_env"  # the agent loop's registered name (verl 0.9.1)
AGENT_LOOP_CLASS = "shiftlab.integrations.verl_agent_loop.EnvAgentLoop"
INTERACTION = "shiftlab"  # the interaction's name in interaction_kwargs (verl <= 0.7)
INTERACTION_CLASS = "shiftlab.integrations.verl_interaction.EnvInteraction"
IMAGE_TOKEN = "<image>"  # RLHFDataset's placeholder for the next entry of `images`
SPLITS = ("train", "test")
FEEDBACK_CHARS = 1000  # feedback kept in the per-sample metrics (verl logs them as strings)
# An export or a reward call that cannot be made as asked (overlapping seeds, a bad episode spec): exit 2.
ExportError = EpisodeError


def source_tag(preset: str) -> str:
    """The `data_source` tag of a preset's rows: verl groups validation metrics by it."""
    return f"{SOURCE_PREFIX}/{preset}"


def _pil(image: Any) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def placeholder_messages(messages: Sequence[Message]) -> tuple[list[dict[str, str]], list[Any]]:
    """shiftlab messages as a parquet prompt: string contents with `<image>` where each image part was,
    and the images in that order (RLHFDataset pairs them back up)."""
    chat, images = [], []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            images += [part["image"] for part in content if part.get("type") == "image"]
            content = text_of(content, separator="\n", image=IMAGE_TOKEN)
        chat.append({"role": message["role"], "content": content})
    return chat, images


def chat_messages(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """shiftlab messages as verl's agent loops hold them: image parts carry PIL images (what its chat
    template builders and the rollout servers take), and the new images are returned in order."""
    chat, images = [], []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    images.append(_pil(part["image"]))
                    parts.append({"type": "image", "image": images[-1]})
                else:
                    parts.append({"type": "text", "text": part.get("text") or ""})
            content = parts
        chat.append({"role": message["role"], "content": content})
    return chat, images


def result_fields(rewards: Sequence[float], info: Mapping[str, Any], done: bool, point: int,
                  cut: bool, turn_keys: Sequence[str]) -> dict[str, Any]:
    """The per-sample record both reward paths give verl, with the same keys for every task: "score"
    (the sum of the environment's rewards), "acc" (1.0 when the episode ended in success), the last
    outcome and feedback, the attempts left, the decision point reached, the turns played, whether an
    answer was cut, and the task's own turn keys as JSON ("details")."""
    success = bool(done and info.get("success", False))
    return {
        "score": float(sum(rewards)),
        "acc": float(success),
        "outcome": str(_plain(info.get("outcome", ""))),
        "feedback": str(info.get("feedback", ""))[:FEEDBACK_CHARS],
        "attempts_left": int(_plain(info.get("attempts_left", 0)) or 0),
        "point": int(point),
        "turns": len(rewards),
        "answer_cut": float(cut),
        "details": json.dumps(json_safe({k: _plain(info[k]) for k in turn_keys if k in info}), default=str),
    }


class EnvSession(episode.EnvSession):
    """An episode session that also gives verl's per-sample record (`result_fields`)."""

    def fields(self) -> dict[str, Any]:
        return result_fields(self.rewards, self.info, self.done, self.point, self.cut, self.task.turn_keys)


@dataclass
class EpisodeResult:
    rewards: list[float]
    success: bool
    fields: dict[str, Any]

    @property
    def score(self) -> float:
        return float(sum(self.rewards))


# generate(new messages) -> the model's answer, or None when the trainer's length budget is spent.
Generate = Callable[[list[Message]], Awaitable[str | None]]


async def play_episode(session: EnvSession, generate: Generate, max_turns: int | None = None) -> EpisodeResult:
    """Play an episode: the first conversation, then after each answer the messages to append, go to
    `generate`, until the environment ends the episode, `generate` returns None or `max_turns` answers
    were given. The agent loop's `run` is this with a `generate` that keeps verl's token bookkeeping; the
    environment runs in a thread so a slow render does not stall the other episodes' event loop."""
    loop = asyncio.get_running_loop()
    new = await loop.run_in_executor(None, session.reset)
    while True:
        answer = await generate(new)
        if answer is None:
            break
        step = await loop.run_in_executor(None, session.step, answer)
        if step.done or (max_turns is not None and len(session.rewards) >= max_turns):
            break
        new = step.messages
    return EpisodeResult(list(session.rewards), bool(session.done and session.info.get("success", False)),
                         session.fields())


class _EnvPool:
    """Idle environments by (preset, evaluation): verl calls the reward function from a thread pool, and
    building an environment costs far more than resetting one."""

    def __init__(self):
        self._idle: dict[tuple[str, bool], list[Any]] = {}
        self._lock = threading.Lock()

    def take(self, spec: EpisodeSpec) -> Any:
        with self._lock:
            idle = self._idle.get((spec.preset, spec.evaluation))
            if idle:
                return idle.pop()
        return get_preset(spec.preset).make_env(evaluation=spec.evaluation)

    def give(self, spec: EpisodeSpec, env: Any) -> None:
        with self._lock:
            self._idle.setdefault((spec.preset, spec.evaluation), []).append(env)


_POOL = _EnvPool()


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: Mapping | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """verl's custom reward function. One-turn use: rebuild the episode from `ground_truth`, step it once
    with the answer and return `result_fields` ("score" is the environment's reward). When `extra_info`
    carries the per-turn scores of a multi-turn rollout (verl <= 0.7's interaction puts the environment's
    rewards there), "score" is their sum and the episode is not replayed, since `solution_str` then
    holds every turn; "acc" is NaN there, as only the interaction saw whether the episode was solved."""
    spec = EpisodeSpec.from_json(ground_truth)
    if str(data_source) != source_tag(spec.preset):
        raise ExportError(f"data_source {str(data_source)[:100]!r} does not match its episode's preset {spec.preset!r}")
    turn_scores = list((extra_info or {}).get("turn_scores") or [])
    if turn_scores:
        fields = result_fields([float(s) for s in turn_scores], {}, False, 0, False, ())
        fields.update(acc=math.nan, outcome="interaction")
        return fields
    env = _POOL.take(spec)
    try:
        session = EnvSession(spec, env)
        session.reset()
        session.step(solution_str)
        return session.fields()
    finally:
        _POOL.give(spec, env)


def episode_specs(presets: Sequence[TaskPreset], episodes: int, split: str, seed: int,
                  prompt: str | None = None) -> list[EpisodeSpec]:
    """Episode i of each preset uses seed `seed + i` (as `shiftlab eval` does); the test split uses the
    presets' evaluation options (held-out districts), the train split their training options."""
    if split not in SPLITS:
        raise ExportError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if not 1 <= episodes <= MAX_EPISODES:
        raise ExportError(f"episodes must be from 1 to {MAX_EPISODES:,} per task, not {episodes}")
    return [EpisodeSpec(p.name, seed + i, i, split == "test", prompt) for p in presets for i in range(episodes)]


def episode_rows(specs: Sequence[EpisodeSpec], split: str, progress: Any = None) -> Iterator[dict[str, Any]]:
    """One verl row per episode, in order; each preset's environment is built once and reset per row."""
    envs: dict[tuple[str, bool], Any] = {}
    try:
        for index, spec in enumerate(specs):
            key = (spec.preset, spec.evaluation)
            if key not in envs:
                envs[key] = get_preset(spec.preset).make_env(evaluation=spec.evaluation)
            session = EnvSession(spec, envs[key])
            prompt, images = placeholder_messages(session.reset())
            preset = session.preset
            yield {
                "data_source": source_tag(spec.preset),
                "prompt": prompt,
                "images": [{"bytes": png_bytes(image)} for image in images],
                "ability": preset.task,
                "reward_model": {"style": "rule", "ground_truth": spec.to_json()},
                "extra_info": {
                    "split": split,
                    "index": index,
                    "preset": spec.preset,
                    "shift": preset.shift,
                    "ood": preset.is_ood,
                    "seed": spec.seed,
                    "episode": spec.episode,
                    "interaction_kwargs": {"name": INTERACTION, **spec.as_dict()},
                },
            }
            if progress is not None:
                progress.update(1)
    finally:
        for env in envs.values():
            env.close()


def _generate(specs: str, split: str, quiet: bool) -> Iterator[dict[str, Any]]:
    """`datasets.Dataset.from_generator`'s generator. The episodes come as one JSON string: datasets
    would split a list argument into shards, each numbering its rows from 0 and building its own
    environments."""
    episodes = [EpisodeSpec(**s) for s in json.loads(specs)]
    with tqdm(total=len(episodes), desc=f"verl {split}", unit="episode", disable=quiet) as progress:
        yield from episode_rows(episodes, split, progress)


def _features():
    import datasets

    string, integer = datasets.Value("string"), datasets.Value("int64")
    spec = {"preset": string, "seed": integer, "episode": integer, "evaluation": datasets.Value("bool"),
            "prompt": string}
    return datasets.Features({
        "data_source": string,
        "prompt": [{"role": string, "content": string}],
        "images": [{"bytes": datasets.Value("binary")}],
        "ability": string,
        "reward_model": {"style": string, "ground_truth": string},
        "extra_info": {"split": string, "index": integer, "preset": string, "shift": string,
                       "ood": datasets.Value("bool"), "seed": integer, "episode": integer,
                       "interaction_kwargs": {"name": string, **spec}},
    })


def write_parquet(path: str | Path, specs: Sequence[EpisodeSpec], split: str, quiet: bool = False) -> int:
    """Write the rows of `specs` to one parquet file, streaming through an Arrow cache on disk so the
    memory an export takes does not grow with its images. Returns the number of rows."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # ours counts episodes; theirs would count the same rows twice
    try:
        with tempfile.TemporaryDirectory(prefix="shiftlab-verl-") as cache:
            rows = datasets.Dataset.from_generator(
                _generate, features=_features(), cache_dir=cache, fingerprint=f"shiftlab-verl-{split}",
                gen_kwargs={"specs": json.dumps([s.as_dict() for s in specs]), "split": split, "quiet": quiet})
            rows.to_parquet(str(path))
            count = len(rows)
            del rows  # it maps the cache's Arrow file, which must close before the directory goes
            return count
    finally:
        if bars:
            datasets.enable_progress_bars()


def _seed_ranges(entry: Mapping) -> dict[str, tuple[int, int]]:
    return {p["name"]: (int(p["seeds"][0]), int(p["seeds"][1])) for p in entry.get("presets", [])}


def check_disjoint(manifest: Mapping, split: str, presets: Sequence[TaskPreset], episodes: int, seed: int) -> None:
    """Refuse seeds that an export's other split already holds for the same preset: those episodes would
    be trained on and then evaluated."""
    for other, entry in (manifest.get("splits") or {}).items():
        if other == split:
            continue
        taken = _seed_ranges(entry)
        for preset in presets:
            if preset.name in taken:
                low, high = taken[preset.name]
                if seed <= high and low <= seed + episodes - 1:
                    raise ExportError(f"seeds {seed}..{seed + episodes - 1} of {preset.name} overlap the {other} "
                                      f"split's {low}..{high} in this directory; pick another --seed")


def export(out: str | Path, presets: Sequence[TaskPreset], episodes: int, split: str, seed: int,
           prompt: str | None = None, quiet: bool = False) -> Path:
    """Write `<split>.parquet` (verl's `data.train_files` / `data.val_files`), the agent loop config (verl
    0.9.1), the interaction config (verl <= 0.7) and `manifest.json` (seeds, presets, versions; a second
    split exported into the same directory is added to it, and must not reuse the first one's seeds).
    Returns the parquet path."""
    out = Path(out)
    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ExportError(f"{manifest_path} is not a readable manifest; use a new --out") from None
        if not isinstance(manifest, dict):
            raise ExportError(f"{manifest_path} is not a shiftlab verl manifest; use a new --out")
    specs = episode_specs(presets, episodes, split, seed, prompt)
    check_disjoint(manifest, split, presets, episodes, seed)
    path = out / f"{split}.parquet"
    rows = write_parquet(path, specs, split, quiet)
    (out / "agent_loop.yaml").write_text(agent_loop_yaml(), encoding="utf-8")
    (out / "interaction.yaml").write_text(interaction_yaml(), encoding="utf-8")
    manifest.update({"shiftlab_version": __version__, "verl_version": VERL_VERSION,
                     "agent_loop": AGENT_LOOP, "interaction": INTERACTION})
    manifest.setdefault("splits", {})[split] = {
        "file": path.name, "rows": rows, "episodes": episodes, "seed": seed, "prompt": prompt,
        "evaluation": split == "test",
        "presets": [{"name": p.name, "data_source": source_tag(p.name), "task": p.task, "shift": p.shift,
                     "seeds": [seed, seed + episodes - 1]} for p in presets],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def agent_loop_yaml() -> str:
    """verl 0.9.1's `actor_rollout_ref.rollout.agent.agent_loop_config_path`: a list of loops to
    instantiate by name (`max_turns` caps the answers per episode; null: the environment's own end)."""
    return ("# verl 0.9.1: actor_rollout_ref.rollout.agent.agent_loop_config_path=<this file>\n"
            + yaml.safe_dump([{"name": AGENT_LOOP, "_target_": AGENT_LOOP_CLASS, "max_turns": None}], sort_keys=False))


def interaction_yaml() -> str:
    """verl <= 0.7's `actor_rollout_ref.rollout.multi_turn.interaction_config_path`."""
    return ("# verl <= 0.7 only (0.8 removed interactions): "
            "actor_rollout_ref.rollout.multi_turn.interaction_config_path=<this file>\n"
            + yaml.safe_dump({"interaction": [{"name": INTERACTION, "class_name": INTERACTION_CLASS, "config": {}}]},
                             sort_keys=False))
