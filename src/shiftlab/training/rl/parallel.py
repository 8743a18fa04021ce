"""Data parallelism for the RL trainer: what each process plays, and how its share of a step becomes the
step the one-process run takes.

A step's groups are split into contiguous shards, one per process, so a GRPO group never spans two
processes and the shards in process order are the one-process step's groups in order. Each process
trains on its own samples; the loss of every sample is normalised by the totals of the whole step
(gathered), and the gradients are summed over the processes, so the update is the one the one-process
run makes from all the samples (up to floating-point summation order).

The gradients are summed by one explicit all-reduce per optimizer step instead of DDP's backward hooks:
the processes' shares of a step differ (episodes end after different numbers of turns, dynamic sampling
keeps different groups, a process may have nothing to train on), and DDP needs every process to run the
same forward and backward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from accelerate.utils import gather_object


def shard(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """This process's contiguous share of `items`; shares differ in length by one at most."""
    bounds = np.linspace(0, len(items), world + 1).round().astype(int)
    return list(items[bounds[rank] : bounds[rank + 1]])


def gather(accelerator: Any, value: Any) -> list[Any]:
    """`value` of every process, in process order (any picklable object)."""
    if accelerator.num_processes == 1:
        return [value]
    return gather_object([value])


def summed(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    """Each key summed over the processes (a key missing on a process counts 0 there)."""
    total: dict[str, float] = {}
    for part in gather(accelerator, values):
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def weighted_means(accelerator: Any, sums: dict[str, list[float]]) -> dict[str, float]:
    """`{key: [weighted sum, weight]}` of every process as one mean per key over all of them; a weight
    of None (`loss`) asks for the plain sum."""
    merged: dict[str, list[float | None]] = {}
    for part in gather(accelerator, sums):
        for key, (value, weight) in part.items():
            old = merged.setdefault(key, [0.0, None if weight is None else 0.0])
            old[0] += value
            if weight is not None:
                old[1] += weight
    return {key: value if weight is None else value / max(weight, 1e-12) for key, (value, weight) in merged.items()}


def sum_gradients(accelerator: Any, parameters: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients of `parameters` over the processes, in place. A process that had nothing to train
    on in this update still takes part, with zeros."""
    if accelerator.num_processes == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    handles = [dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, async_op=True) for p in parameters]
    for handle in handles:
        handle.wait()


def whiten(accelerator: Any, values: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`objectives.whiten` over the values of all processes together (PPO's advantages of a step)."""
    everything = torch.tensor([v for part in gather(accelerator, values.tolist()) for v in part],
                              dtype=values.dtype)
    count = everything.numel()
    if count == 0:
        return values
    mean = everything.mean()
    if count < 2:
        return values - mean
    var = (everything - mean).square().sum() / (count - 1)
    return (values - mean) / (var.sqrt() + eps)
