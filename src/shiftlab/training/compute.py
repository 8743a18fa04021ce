"""Training compute, counted the way the paper counts it (App. C.3): 6 * N * D FLOPs for D tokens
through a model of N parameters (2N forward, 4N backward per token).

N leaves out the input embedding table, whose lookup costs no multiplications; the output head,
which does, stays in. D counts every non-padding token of the batch, prompt and answer alike, since
both go through the forward and backward pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def flop_parameters(model: Any) -> int:
    """Parameters that cost 2 FLOPs per token forward: all of them but the input embeddings."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    skip = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if id(parameter) in skip or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
    return total


def training_flops(parameters: int, tokens: int) -> float:
    """Tokens through forward and backward: 6N each."""
    return 6.0 * parameters * tokens


def forward_flops(parameters: int, tokens: int) -> float:
    """Tokens only run forward (generation, scoring without gradients): 2N each."""
    return 2.0 * parameters * tokens


def write_compute(directory: str | Path, *, step: int, tokens: int, parameters: int, **extra: Any) -> dict:
    """`compute.json` next to a checkpoint, so curves can put compute on their x-axis."""
    record = {"step": int(step), "tokens": int(tokens), "parameters": int(parameters),
              "flops": training_flops(parameters, tokens), **extra}
    path = Path(directory) / "compute.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def read_compute(directory: str | Path) -> dict | None:
    path = Path(directory) / "compute.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
