"""Finished episodes as training samples: one sample per answered turn.

A sample is the prompt exactly as the policy saw it (task, earlier answers, verifier feedback)
followed by the answer the policy generated. Only the answer's tokens are trained on; the prompt is
context. Batches are padded on the left, so every answer ends in the last column: the model then
computes logits for the last `R + 1` columns only (R the longest answer), which saves most of the
output layer's cost when prompts are long, and answers sit right-aligned in `[B, R]` tensors.

Samples that share a prompt (the episodes of a GRPO group all start from the same one) are run as
one pass over each distinct prompt, whose key/value cache the answers then attend to. The result and
its gradients are those of running every sample in full; the shared prompt is computed once instead
of `group_size` times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from shiftlab.models.loading import old_cache_name

# When the answer key is missing (a malformed answer), the last few tokens stand for the action,
# as in the paper's trainer.
FALLBACK_ACTION_TOKENS = 4


@dataclass
class Sample:
    prompt_ids: torch.Tensor  # [P] long
    response_ids: torch.Tensor  # [R] long
    extras: dict[str, torch.Tensor]  # the prompt's image inputs (pixel values ...), batched along dim 0
    action_start: int  # response tokens from here on are the action; before it, the reasoning
    reward: float  # the verifier's reward for this turn, after the trainer's reward mode
    group: int  # episodes played from the same seed share a group
    episode: int  # the episode's position among this step's episodes
    turn: int
    last: bool  # the episode's final turn
    # Filled in by the trainer before the update.
    logp_old: torch.Tensor | None = None
    logp_ref: torch.Tensor | None = None
    value_old: float = 0.0
    advantage: float = 0.0
    target: float = 0.0  # the value head's regression target (PPO returns)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.prompt_ids.numel() + self.response_ids.numel())


def action_start(tokenizer: Any, response_ids: Sequence[int], answer_key: str | None) -> int:
    """Index of the first token of the answer's final `"<answer_key>"` field: the split between
    reasoning and action that the paper's PPO weighs differently. Without a key, all is action."""
    ids = list(response_ids)
    if not answer_key or not ids:
        return 0
    pieces = [tokenizer.decode([t]) for t in ids]
    position = "".join(pieces).rfind(f'"{answer_key}"')
    if position < 0:
        return max(len(ids) - FALLBACK_ACTION_TOKENS, 0)
    covered = 0
    for index, piece in enumerate(pieces):
        covered += len(piece)
        if covered > position:
            return index
    return len(ids) - 1


@dataclass
class SharedPrompts:
    """The distinct prompts of a batch, and how its rows continue them."""

    inputs: dict[str, torch.Tensor]  # the distinct prompts, left-padded: [U, P]
    index: torch.Tensor  # [B] row -> its prompt
    attention_mask: torch.Tensor  # [B, P + R] prompt mask, then the answer's (answers right-aligned)
    position_ids: torch.Tensor  # [B, R] the answer tokens' positions, following their prompt
    first: torch.Tensor  # [B, R] bool, True at each row's first answer token


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]  # model inputs over [B, L]
    keep: int  # logits to keep: the last R + 1 columns
    response: torch.Tensor  # [B, R] right-aligned answer tokens
    mask: torch.Tensor  # [B, R] float, 1 on answer tokens
    action_mask: torch.Tensor  # [B, R] float, 1 on action tokens
    last_prompt: torch.Tensor  # [B] column of each row's last prompt token
    tokens: int  # tokens of the batch's samples, prompts counted once per sample (the paper's D)
    shared: SharedPrompts | None = None  # set when rows share prompts: then `inputs` is unused


def sort_key(sample: Sample) -> tuple:
    """Orders samples so that those sharing a prompt are neighbours, and lengths are close."""
    return sample.prompt_ids.numel(), tuple(sample.prompt_ids.tolist()), sample.response_ids.numel()


def collate(samples: Sequence[Sample], pad_id: int, device: torch.device | str = "cpu",
            share_prompts: bool = True) -> Batch:
    """A batch of samples; with `share_prompts`, text samples that repeat a prompt run it once."""
    if share_prompts and not samples[0].extras:
        prompts: dict[tuple[int, ...], int] = {}
        index = [prompts.setdefault(tuple(s.prompt_ids.tolist()), len(prompts)) for s in samples]
        if len(prompts) < len(samples):
            return _collate_shared(samples, list(prompts), index, pad_id, device)
    lengths = [s.length for s in samples]
    width = max(lengths)
    longest = max(int(s.response_ids.numel()) for s in samples)
    rows = len(samples)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, width), dtype=torch.long)
    response = torch.full((rows, longest), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, longest))
    action = torch.zeros((rows, longest))
    last_prompt = torch.zeros(rows, dtype=torch.long)
    for row, (sample, length) in enumerate(zip(samples, lengths, strict=True)):
        n = int(sample.response_ids.numel())
        input_ids[row, width - length :] = torch.cat([sample.prompt_ids, sample.response_ids])
        attention[row, width - length :] = 1
        response[row, longest - n :] = sample.response_ids
        mask[row, longest - n :] = 1.0
        action[row, longest - n + sample.action_start :] = 1.0
        last_prompt[row] = width - n - 1
    # Positions count real tokens only, exactly as generation numbered them under left padding.
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    inputs = {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}
    for key in samples[0].extras:
        inputs[key] = torch.cat([s.extras[key] for s in samples])
    inputs = {k: v.to(device) for k, v in inputs.items()}
    return Batch(inputs, longest + 1, response.to(device), mask.to(device), action.to(device),
                 last_prompt.to(device), sum(lengths))


def _collate_shared(samples: Sequence[Sample], prompts: list[tuple[int, ...]], index: list[int], pad_id: int,
                    device: torch.device | str) -> Batch:
    width = max(len(p) for p in prompts)
    prompt_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        prompt_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        prompt_mask[row, width - len(prompt) :] = 1
    rows = len(samples)
    longest = max(int(s.response_ids.numel()) for s in samples)
    response = torch.full((rows, longest), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, longest))
    action = torch.zeros((rows, longest))
    first = torch.zeros((rows, longest), dtype=torch.bool)
    positions = torch.zeros((rows, longest), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = int(sample.response_ids.numel())
        response[row, longest - n :] = sample.response_ids
        mask[row, longest - n :] = 1.0
        action[row, longest - n + sample.action_start :] = 1.0
        first[row, longest - n] = True
        positions[row, longest - n :] = torch.arange(n) + sample.prompt_ids.numel()
    picks = torch.tensor(index)
    shared = SharedPrompts(
        {"input_ids": prompt_ids.to(device), "attention_mask": prompt_mask.to(device),
         "position_ids": (prompt_mask.cumsum(-1) - 1).clamp(min=0).to(device)},
        picks.to(device), torch.cat([prompt_mask[picks], mask.long()], 1).to(device), positions.to(device),
        first.to(device))
    return Batch({}, longest + 1, response.to(device), mask.to(device), action.to(device),
                 torch.zeros(rows, dtype=torch.long, device=device), sum(s.length for s in samples), shared)


def _shared_logits(model: Any, batch: Batch, hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits predicting each answer token ([B, R, V]) when rows share prompts: one pass over the
    distinct prompts, their cache copied to the rows, then one pass over the answers."""
    shared = batch.shared
    cache = DynamicCache(config=model.config)
    with old_cache_name():
        prompt_pass = model(**shared.inputs, past_key_values=cache, use_cache=True, logits_to_keep=1,
                            output_hidden_states=hidden)
        cache.batch_select_indices(shared.index)
        answer_pass = model(input_ids=batch.response, attention_mask=shared.attention_mask,
                            position_ids=shared.position_ids, past_key_values=cache, use_cache=True)
    last = prompt_pass.logits[:, -1][shared.index].unsqueeze(1)
    # Column j's token is predicted at column j - 1, its first one by the prompt's last position.
    logits = torch.cat([last, answer_pass.logits[:, :-1]], 1)
    logits = torch.where(shared.first.unsqueeze(-1), last, logits)
    state = prompt_pass.hidden_states[-1][:, -1][shared.index] if hidden else None
    return logits, state


def response_logprobs(model: Any, batch: Batch, temperature: float = 1.0, hidden: bool = False,
                      entropy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Log-probabilities of the answer tokens under `model` ([B, R], right-aligned), the final hidden
    state at each row's last prompt token (for a value head, when `hidden`), and the mean token
    entropy (detached, unless `entropy_grad`: an entropy bonus needs its gradient). Logits are divided
    by the sampling temperature, so the log-probabilities are those of the distribution the answers
    were drawn from."""
    state = None
    if batch.shared is not None:
        logits, state = _shared_logits(model, batch, hidden)
        logits = logits.float()
    else:
        output = model(**batch.inputs, logits_to_keep=batch.keep, output_hidden_states=hidden, use_cache=False)
        logits = output.logits[:, -batch.keep : -1].float()
        if hidden:
            final = output.hidden_states[-1]
            state = final[torch.arange(final.shape[0], device=final.device), batch.last_prompt]
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.response.unsqueeze(-1)).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        entropy = (entropy * batch.mask).sum() / batch.mask.sum().clamp(min=1)
    return logp, state, entropy
