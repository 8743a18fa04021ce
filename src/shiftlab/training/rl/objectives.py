"""The RL trainer's tensor math: advantages, PPO losses, KL penalties and loss aggregation.

The algorithms the trainer offers (PPO with GAE, the paper's sequence-level PPO, GRPO, Dr. GRPO, DAPO,
RLOO) differ mostly in a few formulas: how the advantage is baselined, where the ratio is clipped, which
KL estimator is used and how token losses are averaged. Keeping each of those here as a pure function of
tensors, away from models and I/O, lets the trainer pick them by name and lets tests check every formula
by hand on small tensors.

Token-level tensors are `[B, T]` over response tokens, with a 0/1 float `mask` that is 1 on the tokens
the policy generated. One row is one turn of an episode.
"""

from __future__ import annotations

import torch
from torch import Tensor

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
KL_ESTIMATORS = ("k1", "k2", "k3", "abs")
GROUP_ESTIMATORS = ("grpo", "dr_grpo", "rloo")

# exp() of a log-ratio beyond this overflows float32 or means the sample is garbage (padding, a
# wildly stale policy); clamping keeps losses finite without changing anything inside a trust region.
MAX_LOG_RATIO = 20.0


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def group_advantages(scores: Tensor, groups: Tensor, estimator: str = "grpo", eps: float = 1e-6) -> Tensor:
    """One advantage per episode, baselined by the other episodes played from the same start.

    grpo divides by the group's unbiased std, dr_grpo does not (dividing by it favours prompts that
    are nearly always or nearly never solved), rloo subtracts the mean of the *other* members so the baseline is independent of the
    episode it judges. A group whose scores are all equal carries no signal and gets exactly 0; a
    singleton group gets 0, except under rloo, which has no baseline and falls back to the score.
    """
    _check_choice("group estimator", estimator, GROUP_ESTIMATORS)
    if scores.dim() != 1 or groups.shape != scores.shape:
        raise ValueError(f"scores and groups must be 1-D of equal length, got {tuple(scores.shape)}, "
                         f"{tuple(groups.shape)}")
    scores = scores if scores.is_floating_point() else scores.float()
    names, index = torch.unique(groups, return_inverse=True)
    num_groups = names.numel()

    def per_group(values: Tensor, reduce: str = "sum") -> Tensor:
        out = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
        return out.scatter_reduce(0, index, values, reduce=reduce, include_self=reduce == "sum")

    count = per_group(torch.ones_like(scores))[index]
    centred = scores - per_group(scores)[index] / count
    if estimator == "grpo":
        std = (per_group(centred.square())[index] / (count - 1).clamp(min=1)).sqrt()
        advantages = centred / (std + eps)
    elif estimator == "dr_grpo":
        advantages = centred
    else:
        advantages = count / (count - 1).clamp(min=1) * centred
    constant = per_group(scores, "amax")[index] == per_group(scores, "amin")[index]
    advantages = torch.where(constant, torch.zeros_like(advantages), advantages)
    if estimator == "rloo":
        advantages = torch.where(count == 1, scores, advantages)
    return advantages


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, dones: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over consecutive turns of episodes laid end to end.

    `dones[t]` marks an episode's last turn: nothing is bootstrapped across it. The final entry
    bootstraps from 0 whether or not it is marked done, since no later value is known.
    Returns `(advantages, returns)` with `returns = advantages + values`, the critic's target.
    """
    if not (rewards.dim() == 1 and values.shape == rewards.shape and dones.shape == rewards.shape):
        raise ValueError(f"rewards, values and dones must be 1-D of equal length, got {tuple(rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(dones.shape)}")
    values = values.detach().to(rewards.dtype)
    carry = 1.0 - dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_value = rewards.new_zeros(())
    next_advantage = rewards.new_zeros(())
    for t in range(rewards.numel() - 1, -1, -1):
        delta = rewards[t] + gamma * next_value * carry[t] - values[t]
        next_advantage = delta + gamma * lam * carry[t] * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def whiten(values: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Shift and scale to zero mean and unit (unbiased) std over the masked entries, so the advantage
    scale does not depend on the reward scale. Unmasked entries are transformed alike but carry no
    meaning. With fewer than two masked entries there is no spread to divide by: only the mean goes.
    """
    weights = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    count = weights.sum()
    mean = (values * weights).sum() / count.clamp(min=1)
    centred = values - mean
    var = (centred.square() * weights).sum() / (count - 1).clamp(min=1)
    return torch.where(count > 1, centred / (var.sqrt() + eps), centred)


def aggregate(losses: Tensor, mask: Tensor, mode: str, *, num_sequences: float | None = None,
              num_tokens: float | None = None, max_tokens: int | None = None) -> Tensor:
    """Reduce per-token losses `[B, T]` to a scalar in one of the four ways the papers differ on.

    token-mean weighs every token alike (DAPO); seq-mean-token-mean weighs every sequence alike (GRPO);
    seq-mean-token-sum sums each sequence's tokens; seq-mean-token-sum-norm divides that by a constant
    length instead of the sequence's own (Dr. GRPO). With gradient accumulation, pass the whole
    mini-batch's `num_sequences`, `num_tokens` and `max_tokens` to every micro-batch: the micro-batch
    losses then add up to the mini-batch loss, and so do their gradients. Sequences without tokens
    count in the sequence total and contribute 0; an all-zero mask gives 0, still attached to the graph.
    """
    _check_choice("aggregation", mode, AGGREGATIONS)
    if losses.dim() != 2 or mask.shape != losses.shape:
        raise ValueError(f"losses and mask must be [B, T] of equal shape, got {tuple(losses.shape)}, "
                         f"{tuple(mask.shape)}")
    mask = mask.to(losses.dtype)
    masked = losses * mask
    sequences = losses.shape[0] if num_sequences is None else num_sequences
    if mode == "token-mean":
        if num_tokens is None:
            return masked.sum() / mask.sum().clamp(min=1)
        return masked.sum() / max(num_tokens, 1)
    if mode == "seq-mean-token-mean":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).sum() / max(sequences, 1)
    if mode == "seq-mean-token-sum":
        return masked.sum() / max(sequences, 1)
    length = losses.shape[1] if max_tokens is None else max_tokens
    return masked.sum() / max(sequences * length, 1)


def _masked_means(mask: Tensor, *terms: Tensor) -> list[float]:
    """Means of several `[B, T]` tensors over the masked entries, in one device sync."""
    with torch.no_grad():
        mask = mask.to(terms[0].dtype)
        count = mask.sum().clamp(min=1)
        return torch.stack([(term.to(mask.dtype) * mask).sum() / count for term in terms]).tolist()


def ppo_clip_loss(logp: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor, eps_low: float = 0.2,
                  eps_high: float | None = None, dual_clip: float | None = None
                  ) -> tuple[Tensor, dict[str, float]]:
    """Token-level PPO-clip: the policy may move each token's probability only within
    `[1 - eps_low, 1 + eps_high]` of the rollout policy's in the direction its advantage favours.

    `eps_high > eps_low` is DAPO's clip-higher, leaving room for unlikely tokens to grow. `dual_clip`
    (> 1) caps the loss of negative-advantage tokens at `dual_clip * |A|`, so a token whose ratio has
    exploded cannot dominate the batch. `advantages` is `[B]` (one per sample) or `[B, T]`.
    The log-ratio is clamped to ±20 so padding cannot overflow.

    Returns the per-token loss `[B, T]`, to be reduced with `aggregate`, and metrics over masked tokens:
    `ratio_mean`, `clip_frac_low` (A < 0 and ratio below the trust region), `clip_frac_high` (A > 0 and
    ratio above it) and `approx_kl`, the k3 estimate of KL(pi_old || pi_theta) from tokens sampled from
    pi_old: `(ratio - 1) - log(ratio)`, which is never negative.
    """
    eps_high = eps_low if eps_high is None else eps_high
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    advantages = advantages.detach()
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.expand_as(logp)
    log_ratio = (logp - logp_old.detach()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    unclipped = -ratio * advantages
    clipped = -ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages
    loss = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.minimum(loss, -dual_clip * advantages), loss)
    ratio_mean, low, high, kl = _masked_means(
        mask, ratio, (advantages < 0) & (ratio < 1.0 - eps_low), (advantages > 0) & (ratio > 1.0 + eps_high),
        ratio - 1.0 - log_ratio)
    return loss, {"ratio_mean": ratio_mean, "clip_frac_low": low, "clip_frac_high": high, "approx_kl": kl}


def overlong_penalty(length: int, max_tokens: int, buffer: int, penalty: float = 1.0) -> float:
    """DAPO's soft overlong punishment: 0 up to `max_tokens - buffer` tokens, then falling linearly to
    `-penalty` at `max_tokens` (an answer cut there)."""
    start = max_tokens - buffer
    if length <= start:
        return 0.0
    if length >= max_tokens:
        return -penalty
    return -penalty * (length - start) / buffer


def kl_penalty(logp: Tensor, logp_ref: Tensor, estimator: str = "k3", straight_through: bool = False) -> Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from tokens sampled from pi_theta.

    As a loss term the estimators' gradients differ from their values: in expectation the gradient of
    k1 is 0, of k2 it is the gradient of KL(pi_theta || pi_ref), of k3 that of the forward
    KL(pi_ref || pi_theta). `straight_through` keeps the chosen estimator's value (what is logged and
    added) but takes k2's gradient, the reverse KL that the penalty means.
    """
    _check_choice("KL estimator", estimator, KL_ESTIMATORS)
    delta = logp - logp_ref.detach()
    if estimator == "k1":
        value = delta
    elif estimator == "k2":
        value = 0.5 * delta.square()
    elif estimator == "k3":
        bounded = delta.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
        value = (torch.exp(-bounded) + bounded - 1.0).clamp(-10.0, 10.0)
    else:
        value = delta.abs()
    if not straight_through:
        return value
    k2 = 0.5 * delta.square()
    return k2 + (value - k2).detach()


def sequence_logprob(logp: Tensor, mask: Tensor, action_mask: Tensor, thought_coef: float) -> Tensor:
    """The paper's action log-probability `[B]`: the reasoning tokens' log-probs weighted by
    `thought_coef` plus the action tokens' in full, so a long chain of thought does not swamp the
    ratio of the few tokens that act. `action_mask` marks the action tokens; the rest of `mask` is thought.
    """
    mask = mask.to(logp.dtype)
    action = mask * action_mask.to(logp.dtype)
    thought = mask - action
    return thought_coef * (logp * thought).sum(dim=-1) + (logp * action).sum(dim=-1)


def sequence_ppo_loss(seq_logp: Tensor, seq_logp_old: Tensor, advantages: Tensor, eps: float = 0.1
                      ) -> tuple[Tensor, dict[str, float]]:
    """PPO-clip with one ratio per sample, taken on `sequence_logprob`, as the paper's trainer does.

    Returns the per-sample loss `[B]` and metrics: `ratio_mean` and `clip_frac`, the share of samples
    whose clip is active (ratio outside `[1 - eps, 1 + eps]` on the side their advantage pushes).
    """
    advantages = advantages.detach()
    log_ratio = (seq_logp - seq_logp_old.detach()).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    loss = torch.maximum(-ratio * advantages, -ratio.clamp(1.0 - eps, 1.0 + eps) * advantages)
    active = ((advantages > 0) & (ratio > 1.0 + eps)) | ((advantages < 0) & (ratio < 1.0 - eps))
    ratio_mean, clip_frac = _masked_means(torch.ones_like(ratio), ratio, active)
    return loss, {"ratio_mean": ratio_mean, "clip_frac": clip_frac}


def value_loss(values: Tensor, values_old: Tensor, returns: Tensor, clip: float | None = 0.1) -> Tensor:
    """Critic regression to the returns. With `clip`, the pessimistic max of the plain error and the
    error of a value moved at most `clip` from the rollout's, so one update cannot drag the critic far.
    """
    returns = returns.detach()
    error = (values - returns).square()
    if clip is not None:
        values_old = values_old.detach()
        moved = values_old + (values - values_old).clamp(-clip, clip)
        error = torch.maximum(error, (moved - returns).square())
    return 0.5 * error.mean()
