"""Expert episodes as a Hugging Face dataset of chat conversations, the input of SFT.

Each row is one decision point of one episode: the conversation the model saw there, ending with the
expert's answer as the assistant turn. With `revisions=k`, the first k answers at each point are
random (well-formed, usually wrong) guesses, so the conversation carries the verifier's feedback and
ends with the expert's correction, the "sequential revision" data of the paper's ablation.

Columns: `messages` (chat messages; a plain string per message for text tasks, a list of parts
{"type", "text"} with image placeholders once any row has an image), `images` (PIL images in
placeholder order; only when some row has images), and the provenance of the row: `task`, `seed`,
`episode`, `point`, `revisions`, plus `env` (the option overrides as JSON).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from shiftlab.policies.base import Request, Response
from shiftlab.policies.oracle import ExpertPolicy, RandomPolicy
from shiftlab.rollout import Trajectory, run_episodes
from shiftlab.task import Source, get_preset


class RevisionPolicy:
    """Random guesses for the first `revisions` answers at each decision point, then the expert.
    The attempts so far are the assistant turns already in the request's conversation."""

    def __init__(self, revisions: int, seed: int = 0):
        self.revisions = int(revisions)
        self.expert, self.guesser = ExpertPolicy(), RandomPolicy(seed)
        self.name = f"revision:{revisions}"

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        attempts = [sum(m["role"] == "assistant" for m in r.messages) for r in requests]
        guess = [i for i, n in enumerate(attempts) if n < self.revisions]
        out = self.expert.generate(requests)
        for i, response in zip(guess, self.guesser.generate([requests[i] for i in guess]), strict=True):
            out[i] = response
        return out


def episode_rows(source: Source, seed: int = 0, batch_size: int = 64) -> Iterator[dict[str, Any]]:
    """Rows (with images as numpy arrays) of one source's episodes, in episode order."""
    preset = get_preset(source.task)
    env = dict(source.env)
    if source.revisions:
        # Each point needs room for the guesses and the correction; a larger budget is never used, as
        # the expert's answer ends the point.
        env["max_attempts"] = max(int(env.get("max_attempts", 1)), source.revisions + 1)
    policy = RevisionPolicy(source.revisions, seed) if source.revisions else ExpertPolicy()
    trajectories = run_episodes(preset, policy, range(source.episodes), seed=seed, batch_size=batch_size,
                                evaluation=False, prompt=source.prompt, **env)
    env_json = json.dumps(dict(source.env), sort_keys=True)
    for trajectory in sorted(trajectories, key=lambda t: t.episode):
        for point, messages in _final_conversations(trajectory):
            yield {"messages": messages, "task": source.task, "seed": trajectory.seed, "episode": trajectory.episode,
                   "point": point, "revisions": source.revisions, "env": env_json}


def _final_conversations(trajectory: Trajectory) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Per decision point, the last conversation there with its answer appended."""
    last = {}
    for turn in trajectory.turns:
        last[turn.point] = turn
    for point in sorted(last):
        turn = last[point]
        yield point, [*turn.messages, {"role": "assistant", "content": turn.response}]


def build_dataset(sources: Iterable[Source], seed: int = 0, extra_rows: Iterable[dict[str, Any]] = ()):
    """A `datasets.Dataset` of every source's rows (then `extra_rows`, already in row form), in order.
    Source i plays its episodes with seed `seed + 1_000_003 * i`, so adding a source leaves the others'
    episodes unchanged."""
    rows = []
    for i, source in enumerate(sources):
        rows.extend(episode_rows(source, seed=seed + 1_000_003 * i))
    rows.extend(extra_rows)
    return rows_to_dataset(rows)


def rows_to_dataset(rows: Sequence[dict[str, Any]]):
    """Rows to a Dataset with one schema: message contents become part lists and images PNG-encoded
    when any row has an image, plain strings otherwise."""
    import datasets

    if not rows:
        raise ValueError("no rows to make a dataset from: every source has zero episodes")
    with_images = any(_has_image(m) for row in rows for m in row["messages"])
    records = []
    for row in rows:
        messages, images = _normalise(row["messages"], with_images)
        record = {**row, "messages": messages}
        if with_images:
            record["images"] = [{"bytes": _png(image), "path": None} for image in images]
        records.append(record)
    features = {
        "messages": datasets.List({
            "role": datasets.Value("string"),
            "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})
            if with_images else datasets.Value("string"),
        }),
        "task": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "episode": datasets.Value("int64"),
        "point": datasets.Value("int64"),
        "revisions": datasets.Value("int64"),
        "env": datasets.Value("string"),
    }
    if with_images:
        features["images"] = datasets.List(datasets.Image())
    return datasets.Dataset.from_list(records, features=datasets.Features(features))


def _has_image(message: Mapping[str, Any]) -> bool:
    content = message["content"]
    return not isinstance(content, str) and any(p.get("type") == "image" for p in content)


def _normalise(messages: Sequence[Mapping[str, Any]], parts: bool) -> tuple[list[dict[str, Any]], list[Any]]:
    out, images = [], []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        normal = []
        for part in content:
            if part.get("type") == "image":
                images.append(part["image"])
                normal.append({"type": "image", "text": None})
            else:
                normal.append({"type": "text", "text": str(part.get("text", ""))})
        if parts:
            out.append({"role": message["role"], "content": normal})
        else:
            out.append({"role": message["role"], "content": "".join(p["text"] for p in normal)})
    return out, images


def _png(image: Any) -> bytes:
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
