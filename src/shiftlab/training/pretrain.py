"""Base pretraining: make a small model stand in for a foundation model before post-training.

The paper post-trains Llama-3.2-Vision, a model that has seen the world broadly. A freshly built
model has seen nothing, so this stage trains it on a broad mixture: expert episodes of every task
variant (both face-card rules, all suit colours, several targets, both action spaces, all cities,
some with revision turns) and simple supporting facts (arithmetic, card values, compass turns, and
for VLMs, reading the cards in a picture). The post-training study then starts from it: SFT and RL
on one variant, evaluation on the others.

The mixture is built from training districts only; evaluation uses held-out districts and seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shiftlab.envs.general_points.cards import RANKS, face_card_rule, rank_value
from shiftlab.envs.virl.geo import DIRECTIONS
from shiftlab.envs.virl.milestones import relative_turn
from shiftlab.training.expert_data import Source

TARGETS = (24, 24, 12, 18, 30)  # 24 most often: it is the target of every study preset


def mixture(kind: str = "lm", episodes: int = 200) -> list[Source]:
    """Task sources of the pretraining mixture; `episodes` per source (fewer for the long V-IRL ones)."""
    if kind not in ("lm", "vlm"):
        raise ValueError(f"kind must be 'lm' or 'vlm', not {kind!r}")
    sources = []
    for ten in (True, False):
        for target in sorted(set(TARGETS)):
            sources.append(Source("gp-l", episodes // 2, {"face_cards_as_ten": ten, "target": target}))
        sources.append(Source("gp-l", episodes // 4, {"face_cards_as_ten": ten}, revisions=1))
    virl = max(1, episodes // 8)
    for action_space in ("absolute", "relative"):
        sources.append(Source("virl-l", virl, {"action_space": action_space, "city": "all"}))
        sources.append(Source("virl-l", max(1, virl // 4), {"action_space": action_space}, revisions=1))
    if kind == "vlm":
        for ten in (True, False):
            for color in ("black", "red", "mixed"):
                sources.append(Source("gp-vl", episodes // 4, {"face_cards_as_ten": ten, "suit_color": color}))
        for action_space in ("absolute", "relative"):
            sources.append(Source("virl-vl", virl, {"action_space": action_space, "city": "all"}))
    return sources


def support_rows(count: int, seed: int = 0, images: bool = False) -> Iterator[dict[str, Any]]:
    """Short question-answer facts the tasks build on; with `images`, also card-reading rows."""
    rng = np.random.default_rng([seed, 7919])
    makers = [_arithmetic, _card_value, _turn, _facing]
    if images:
        makers.append(_read_cards)
    for i in range(count):
        question, answer, picture = makers[i % len(makers)](rng)
        content: Any = question
        if picture is not None:
            content = [{"type": "image", "image": picture}, {"type": "text", "text": question}]
        yield {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": answer}],
               "task": "support", "seed": seed, "episode": i, "point": 0, "revisions": 0, "env": "{}"}


def _arithmetic(rng: np.random.Generator) -> tuple[str, str, None]:
    a, b, c = (int(x) for x in rng.integers(1, 14, size=3))
    forms = [(f"{a}+{b}*{c}", a + b * c), (f"({a}+{b})*{c}", (a + b) * c), (f"{a}*{b}-{c}", a * b - c),
             (f"({a}-{b})*{c}", (a - b) * c), (f"{a}*{b}+{c}", a * b + c)]
    text, value = forms[int(rng.integers(len(forms)))]
    return f"What is {text}?", str(value), None


def _card_value(rng: np.random.Generator) -> tuple[str, str, None]:
    rank = RANKS[int(rng.integers(len(RANKS)))]
    ten = bool(rng.integers(2))
    rule = face_card_rule(ten)
    return f"If {rule}, what number does the card {rank} stand for?", str(rank_value(rank, ten)), None


def _turn(rng: np.random.Generator) -> tuple[str, str, None]:
    start, end = (int(x) for x in rng.integers(len(DIRECTIONS), size=2))
    if start == end:
        end = (end + 2) % len(DIRECTIONS)
    return (f"You face {DIRECTIONS[start]} and must face {DIRECTIONS[end]}. Which way do you turn?",
            relative_turn(45.0 * start, 45.0 * end), None)


def _facing(rng: np.random.Generator) -> tuple[str, str, None]:
    start = int(rng.integers(len(DIRECTIONS)))
    turns = {"left": -2, "right": 2, "around": 4}
    word = list(turns)[int(rng.integers(len(turns)))]
    end = DIRECTIONS[(start + turns[word]) % len(DIRECTIONS)]
    return f"You face {DIRECTIONS[start]} and turn {word}. Which direction do you face now?", end, None


def _read_cards(rng: np.random.Generator) -> tuple[str, str, Any]:
    from shiftlab.tasks import get_preset

    color = ("black", "red", "mixed")[int(rng.integers(3))]
    env = get_preset("gp-vl").make_env(suit_color=color, resolution=224)
    observation, info = env.reset(seed=int(rng.integers(2**31)))
    env.close()
    return "Which cards are on the table, from left to right?", ", ".join(info["cards"]), observation


@dataclass
class PretrainConfig:
    """What `shiftlab pretrain` builds and how long it trains; the rest is an SFT run."""

    output_dir: str = field(metadata={"help": "the run; the base model lands in OUTPUT_DIR/final"})
    kind: Literal["lm", "vlm"] = field(default="lm", metadata={"help": "text LM or LLaVA-style VLM"})
    size: Literal["tiny", "small"] = field(default="small", metadata={"help": "model size preset"})
    tokenizer: Literal["bpe", "byte"] = field(default="bpe", metadata={"help": "BPE trained on the tasks' text, or bytes"})
    episodes: int = field(default=100, metadata={"help": "expert episodes per source of the mixture"})
    support: int = field(default=1000, metadata={"help": "supporting question-answer rows"})
    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        from shiftlab.training.config import ConfigError, check_ranges
        from shiftlab.training.expert_data import MAX_EPISODES

        check_ranges(self, {"episodes": (0, MAX_EPISODES), "support": (0, 1_000_000), "epochs": (0, 1e6),
                            "batch_size": (1, 65_536), "learning_rate": (0, 1), "max_steps": (-1, 10**9)},
                     above=("epochs", "learning_rate"))
        if self.max_steps == 0:
            raise ConfigError("config key 'max_steps' must be positive or -1, not 0")


def pretrain(config: PretrainConfig, **sft_overrides: Any):
    """Build the model, build the mixture, train; returns the SFT result (its final model is the base)."""
    from shiftlab.models.builders import build_model
    from shiftlab.training.config import load_config, output_directory
    from shiftlab.training.expert_data import build_dataset
    from shiftlab.training.sft import SFTRunConfig, run_sft

    output = output_directory(config.output_dir)
    initial = output / "initial"
    if not (initial / "config.json").is_file():
        build_model(initial, kind=config.kind, size=config.size, seed=config.seed, tokenizer=config.tokenizer)
    data = output / "mixture"
    if not (data / "dataset_info.json").is_file():
        support = support_rows(config.support, seed=config.seed, images=config.kind == "vlm")
        dataset = build_dataset(mixture(config.kind, config.episodes), seed=config.seed, extra_rows=support)
        dataset.shuffle(seed=config.seed).flatten_indices().save_to_disk(str(data))
    sft = load_config(SFTRunConfig, overrides={
        "model": str(initial), "data": str(data), "output_dir": str(output), "epochs": config.epochs,
        "max_steps": config.max_steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
        "seed": config.seed, "warmup_ratio": 0.05, "group_by_length": config.kind == "lm", "save_steps": 200, "save_total_limit": 2, **sft_overrides,
    })
    return run_sft(sft)
