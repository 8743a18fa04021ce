"""The RL trainer's tensor math against values worked out by hand: group baselines, GAE, whitening,
the four loss aggregations (and that gradient accumulation reproduces them), PPO clipping on either
side, the KL estimators' values and their exact expected gradients, and the paper's sequence-level PPO."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from shiftlab.training.rl.objectives import (  # noqa: E402
    AGGREGATIONS,
    KL_ESTIMATORS,
    aggregate,
    gae,
    group_advantages,
    kl_penalty,
    ppo_clip_loss,
    sequence_logprob,
    sequence_ppo_loss,
    value_loss,
    whiten,
)


def close(actual, expected, atol: float = 1e-5) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual.detach(), expected, atol=atol, rtol=0)


# --- group advantages ---------------------------------------------------------------------------

# Two groups with arbitrary, interleaved ids: 7 holds [1, 0, 0, 1], -2 holds [5, 5].
SCORES = torch.tensor([1.0, 5.0, 0.0, 0.0, 5.0, 1.0])
GROUPS = torch.tensor([7, -2, 7, 7, -2, 7])


def test_grpo_divides_by_the_unbiased_group_std():
    # group 7: mean 0.5, unbiased std sqrt(1/3), so +-0.5 / 0.57735 = +-0.866; group -2 is constant.
    h = 0.5 / (math.sqrt(1 / 3) + 1e-6)
    close(group_advantages(SCORES, GROUPS, "grpo"), [h, 0.0, -h, -h, 0.0, h])


def test_dr_grpo_only_subtracts_the_group_mean():
    close(group_advantages(SCORES, GROUPS, "dr_grpo"), [0.5, 0.0, -0.5, -0.5, 0.0, 0.5])


def test_rloo_subtracts_the_mean_of_the_other_members():
    # [1, 0, 0, 1]: 1 - 2/3 and 0 - 2/3; [3, 0, 6]: 3 - 3, 0 - 4.5, 6 - 1.5.
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 0.0, 6.0])
    groups = torch.tensor([0, 0, 0, 0, 4, 4, 4])
    close(group_advantages(scores, groups, "rloo"), [2 / 3, -2 / 3, -2 / 3, 2 / 3, 0.0, -4.5, 4.5])


def test_singleton_groups_get_zero_except_under_rloo():
    scores = torch.tensor([2.5, 1.0, 0.0])
    groups = torch.tensor([9, 3, 3])
    # [1, 0]: deviations +-0.5 over an unbiased std of sqrt(0.5)
    h = 0.5 / (math.sqrt(0.5) + 1e-6)
    close(group_advantages(scores, groups, "grpo"), [0.0, h, -h])
    close(group_advantages(scores, groups, "dr_grpo"), [0.0, 0.5, -0.5])
    close(group_advantages(scores, groups, "rloo"), [2.5, 1.0, -1.0])


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
def test_constant_groups_give_exactly_zero(estimator):
    # 0.1 is not exact in binary: the group mean can miss the scores by an ulp, which GRPO would blow up.
    scores = torch.tensor([0.1] * 7 + [0.3] * 6)
    advantages = group_advantages(scores, torch.tensor([1] * 7 + [2] * 6), estimator)
    assert torch.equal(advantages, torch.zeros(13))


def test_unknown_group_estimator_names_the_choices():
    with pytest.raises(ValueError, match="grpo, dr_grpo, rloo"):
        group_advantages(SCORES, GROUPS, "ppo")


# --- GAE and whitening --------------------------------------------------------------------------

REWARDS = torch.tensor([1.0, 0.0, 2.0])
VALUES = torch.tensor([0.5, 1.0, -1.0])
DONE_LAST = torch.tensor([False, False, True])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    # returns to go with gamma 0.9: 2, 0 + 0.9 * 2 = 1.8, 1 + 0.9 * 1.8 = 2.62.
    advantages, returns = gae(REWARDS, VALUES, DONE_LAST, gamma=0.9, lam=1.0)
    close(advantages, [2.62 - 0.5, 1.8 - 1.0, 2.0 + 1.0])
    close(returns, [2.62, 1.8, 2.0])


def test_gae_with_lambda_zero_is_the_one_step_td_error():
    advantages, returns = gae(REWARDS, VALUES, DONE_LAST, gamma=0.9, lam=0.0)
    close(advantages, [1.0 + 0.9 * 1.0 - 0.5, 0.0 + 0.9 * -1.0 - 1.0, 2.0 + 1.0])
    close(returns, advantages + VALUES)


def test_gae_does_not_bootstrap_across_an_episode_end():
    second_rewards, second_values = torch.tensor([3.0, -1.0]), torch.tensor([2.0, 0.25])
    rewards = torch.cat([REWARDS, second_rewards])
    values = torch.cat([VALUES, second_values])
    dones = torch.tensor([False, False, True, False, True])
    advantages, _ = gae(rewards, values, dones, gamma=0.9, lam=0.5)
    first, _ = gae(REWARDS, VALUES, DONE_LAST, gamma=0.9, lam=0.5)
    close(advantages[:3], first)
    # second episode by hand: delta = [3 + 0.9 * 0.25 - 2, -1 - 0.25] = [1.225, -1.25]; A0 = 1.225 + 0.45 * -1.25.
    close(advantages[3:], [0.6625, -1.25])
    uncut, _ = gae(rewards, values, torch.tensor([False, False, False, False, True]), gamma=0.9, lam=0.5)
    assert not torch.allclose(uncut[:3], first)


def test_gae_returns_constants_even_from_a_critic_with_gradients():
    values = VALUES.clone().requires_grad_()
    advantages, returns = gae(REWARDS, values, DONE_LAST.float(), gamma=1.0, lam=0.95)
    assert not advantages.requires_grad and not returns.requires_grad


def test_whiten_uses_the_unbiased_std():
    close(whiten(torch.tensor([1.0, 2.0, 3.0, 4.0])), [-1.161895, -0.387298, 0.387298, 1.161895])


def test_whiten_only_looks_at_masked_entries():
    values = torch.tensor([[1.0, 100.0], [3.0, -50.0]])
    out = whiten(values, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    close(out[:, 0], [-0.707107, 0.707107])


def test_whiten_of_a_single_entry_only_removes_the_mean():
    # there is no spread to divide by: unmasked entries stay finite instead of growing by 1 / eps
    close(whiten(torch.tensor([[5.0, 9.0]]), torch.tensor([[0.0, 1.0]])), [[-4.0, 0.0]])
    assert whiten(torch.tensor([3.0])).item() == 0.0


# --- aggregation --------------------------------------------------------------------------------

# Lengths 3, 1 and 2; the masked-out entries are garbage that must not count.
LOSSES = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, -50.0, 0.0, 0.0], [6.0, 8.0, -7.0, 7.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def test_aggregation_modes_by_hand():
    # masked sums 6, 4, 14: total 24 over 6 tokens, 3 sequences, padded width 4.
    assert aggregate(LOSSES, MASK, "token-mean").item() == pytest.approx(24 / 6)
    assert aggregate(LOSSES, MASK, "seq-mean-token-mean").item() == pytest.approx((2 + 4 + 7) / 3)
    assert aggregate(LOSSES, MASK, "seq-mean-token-sum").item() == pytest.approx(24 / 3)
    assert aggregate(LOSSES, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(24 / 12)
    assert aggregate(LOSSES, MASK, "seq-mean-token-sum-norm", max_tokens=8).item() == pytest.approx(1.0)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_micro_batches_with_whole_batch_counts_reproduce_the_batch(mode):
    theta = torch.linspace(-1.0, 2.0, 12).reshape(3, 4).requires_grad_()
    whole = aggregate(theta.square() * LOSSES, MASK, mode)
    (whole_grad,) = torch.autograd.grad(whole, theta)

    counts = {"num_sequences": 3, "num_tokens": 6, "max_tokens": 4}
    # the second micro-batch is padded to its own, shorter width
    parts = [(slice(0, 2), slice(0, 4)), (slice(2, 3), slice(0, 2))]
    total = sum(aggregate(theta[r, c].square() * LOSSES[r, c], MASK[r, c], mode, **counts) for r, c in parts)
    (split_grad,) = torch.autograd.grad(total, theta)
    close(total, whole.item())
    close(split_grad, whole_grad)

    if mode != "seq-mean-token-sum-norm":  # without the counts the micro-batches weigh differently
        naive = sum(aggregate(theta[r, c].square() * LOSSES[r, c], MASK[r, c], mode).item() for r, c in parts)
        assert naive != pytest.approx(whole.item())


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_an_empty_mask_gives_zero_and_keeps_the_graph(mode):
    losses = LOSSES.clone().requires_grad_()
    out = aggregate(losses, torch.zeros_like(MASK), mode)
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(losses.grad, torch.zeros_like(LOSSES))


def test_unknown_aggregation_is_refused():
    with pytest.raises(ValueError, match="token-mean"):
        aggregate(LOSSES, MASK, "mean")


# --- token-level PPO ----------------------------------------------------------------------------

RATIOS = [0.5, 0.9, 1.1, 1.5]


def ppo(ratios, advantages, mask=None, **kwargs):
    logp = torch.tensor(ratios).log().requires_grad_()
    mask = torch.ones_like(logp) if mask is None else mask
    loss, metrics = ppo_clip_loss(logp, torch.zeros_like(logp), torch.tensor(advantages), mask, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    return loss, grad, metrics


def test_ppo_clip_zeroes_the_gradient_only_where_the_clip_applies():
    loss, grad, metrics = ppo([RATIOS, RATIOS], [1.0, -1.0])
    # A > 0: ratio 1.5 is above 1.2 and clipped; a low ratio is not. A < 0: the mirror image.
    close(loss, [[-0.5, -0.9, -1.1, -1.2], [0.8, 0.9, 1.1, 1.5]])
    close(grad, [[-0.5, -0.9, -1.1, 0.0], [0.0, 0.9, 1.1, 1.5]])
    assert metrics["ratio_mean"] == pytest.approx(1.0)
    assert metrics["clip_frac_low"] == pytest.approx(1 / 8)
    assert metrics["clip_frac_high"] == pytest.approx(1 / 8)
    assert metrics["approx_kl"] == pytest.approx(0.0744331, abs=1e-6)  # mean of (r - 1) - log r


def test_token_advantages_equal_broadcast_sequence_advantages():
    per_sample, _, _ = ppo([RATIOS, RATIOS], [1.0, -1.0])
    per_token, _, _ = ppo([RATIOS, RATIOS], [[1.0] * 4, [-1.0] * 4])
    close(per_token, per_sample)


def test_clip_higher_widens_only_the_upper_side():
    ratios, advantages = [[1.25], [0.75]], [1.0, -1.0]
    loss, grad, metrics = ppo(ratios, advantages, eps_low=0.2, eps_high=0.2)
    close(loss, [[-1.2], [0.8]])
    close(grad, [[0.0], [0.0]])
    assert metrics["clip_frac_high"] == pytest.approx(0.5)
    loss, grad, metrics = ppo(ratios, advantages, eps_low=0.2, eps_high=0.28)
    close(loss, [[-1.25], [0.8]])
    close(grad, [[-1.25], [0.0]])
    assert metrics["clip_frac_high"] == 0.0 and metrics["clip_frac_low"] == pytest.approx(0.5)


def test_dual_clip_caps_the_loss_of_negative_advantages():
    ratios, advantages = [[5.0, 2.0], [5.0, 2.0]], [[-1.0, -1.0], [1.0, 1.0]]
    plain, _, _ = ppo(ratios, advantages)
    close(plain, [[5.0, 2.0], [-1.2, -1.2]])
    loss, grad, _ = ppo(ratios, advantages, dual_clip=3.0)
    close(loss, [[3.0, 2.0], [-1.2, -1.2]])
    close(grad, [[0.0, 2.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="dual_clip"):
        ppo(ratios, advantages, dual_clip=1.0)


def test_masked_tokens_change_neither_the_loss_nor_the_metrics():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    logp = torch.tensor([[-0.1, -0.3, -0.2], [-1.0, -0.5, -0.4]])
    garbage = logp.clone()
    garbage[mask == 0] = torch.tensor([100.0, -1e4, 3.0])  # exp(100) overflows float32
    advantages = torch.tensor([0.7, -1.3])
    logp_old = torch.full_like(logp, -0.25)
    results = []
    for values in (logp, garbage):
        values = values.clone().requires_grad_()
        loss, metrics = ppo_clip_loss(values, logp_old, advantages, mask, dual_clip=3.0)
        total = aggregate(loss, mask, "token-mean")
        (grad,) = torch.autograd.grad(total, values)
        assert torch.isfinite(loss).all() and torch.equal(grad[mask == 0], torch.zeros(3))
        results.append((total.item(), metrics))
    assert results[0] == results[1]


# --- KL estimators ------------------------------------------------------------------------------

DELTA = torch.tensor([-1.0, 0.0, 0.5, 2.0])


@pytest.mark.parametrize(("estimator", "expected"), [
    ("k1", [-1.0, 0.0, 0.5, 2.0]),
    ("k2", [0.5, 0.0, 0.125, 2.0]),
    ("k3", [math.e - 2, 0.0, math.exp(-0.5) - 0.5, math.exp(-2) + 1]),
    ("abs", [1.0, 0.0, 0.5, 2.0]),
])
def test_kl_estimators_on_known_log_ratios(estimator, expected):
    # delta = logp - logp_ref, with logp_ref not zero so the sign convention is tested
    close(kl_penalty(DELTA - 0.3, torch.full_like(DELTA, -0.3), estimator), expected)


def test_k3_is_never_negative_and_is_clamped():
    delta = torch.linspace(-30.0, 30.0, 601)
    k3 = kl_penalty(delta, torch.zeros_like(delta), "k3")
    assert (k3 >= 0).all() and torch.isfinite(k3).all()
    assert k3[0].item() == 10.0 and k3[-1].item() == 10.0


def expected_gradient(estimator: str, straight_through: bool = False):
    """E_{x ~ pi_theta}[grad k(x)] over every outcome of a 5-way categorical, exactly, and the gradients
    of both KL directions, all with respect to pi_theta's logits."""
    theta = torch.tensor([0.3, -1.2, 0.8, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(theta, dim=0)
    logp_ref = torch.log_softmax(torch.tensor([1.0, 0.5, -0.7, 0.2, 0.4], dtype=torch.float64), dim=0)
    weights = logp.exp().detach()
    estimate = (weights * kl_penalty(logp, logp_ref, estimator, straight_through)).sum()
    (expected,) = torch.autograd.grad(estimate, theta, retain_graph=True)
    reverse = (logp.exp() * (logp - logp_ref)).sum()
    forward = (logp_ref.exp() * (logp_ref - logp)).sum()
    (reverse_grad,) = torch.autograd.grad(reverse, theta, retain_graph=True)
    (forward_grad,) = torch.autograd.grad(forward, theta)
    return expected, reverse_grad, forward_grad


def test_expected_gradients_of_the_estimators():
    k1, reverse, forward = expected_gradient("k1")
    assert not torch.allclose(reverse, forward, atol=1e-3)  # the two directions are told apart
    close(k1, torch.zeros(5), atol=1e-12)
    close(expected_gradient("k2")[0], reverse, atol=1e-12)
    close(expected_gradient("k3")[0], forward, atol=1e-12)


@pytest.mark.parametrize("estimator", KL_ESTIMATORS)
def test_straight_through_keeps_the_value_and_takes_the_k2_gradient(estimator):
    logp = (DELTA - 0.3).requires_grad_()
    logp_ref = torch.full_like(DELTA, -0.3)
    out = kl_penalty(logp, logp_ref, estimator, straight_through=True)
    close(out, kl_penalty(logp, logp_ref, estimator))
    (grad,) = torch.autograd.grad(out.sum(), logp)
    close(grad, DELTA)  # d(delta^2 / 2) / d logp
    assert torch.allclose(expected_gradient(estimator, straight_through=True)[0], expected_gradient("k2")[1])


def test_unknown_kl_estimator_is_refused():
    with pytest.raises(ValueError, match="k3"):
        kl_penalty(DELTA, DELTA, "k4")


# --- the paper's sequence-level PPO and the critic ----------------------------------------------

def test_sequence_logprob_weighs_thought_and_action_tokens():
    logp = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -1.5, -99.0, -99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    action = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    close(sequence_logprob(logp, mask, action, 0.5), [0.5 * -3.0 - 7.0, 0.5 * -0.5 - 1.5])
    close(sequence_logprob(logp, mask, action, 0.0), [-7.0, -1.5])
    close(sequence_logprob(logp, mask, action, 1.0), [-10.0, -2.0])


def test_sequence_ppo_clips_per_sample():
    seq_logp = torch.tensor([0.5, 1.05, 1.5, 0.5, 1.5]).log().requires_grad_()
    advantages = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0])
    loss, metrics = sequence_ppo_loss(seq_logp, torch.zeros(5), advantages, eps=0.1)
    (grad,) = torch.autograd.grad(loss.sum(), seq_logp)
    close(loss, [-0.5, -1.05, -1.1, 0.9, 1.5])
    close(grad, [-0.5, -1.05, 0.0, 0.0, 1.5])
    assert metrics["clip_frac"] == pytest.approx(2 / 5)
    assert metrics["ratio_mean"] == pytest.approx(1.01)


def test_sequence_ppo_stays_finite_for_huge_log_ratios():
    # summed over hundreds of tokens, sequence log-ratios can be far beyond what exp() can hold
    loss, metrics = sequence_ppo_loss(torch.tensor([500.0, -500.0]), torch.zeros(2), torch.tensor([-1.0, 1.0]))
    assert torch.isfinite(loss).all() and math.isfinite(metrics["ratio_mean"])


def test_value_loss_clipped_and_plain():
    values = torch.tensor([1.0, 2.0, 0.0, 1.0], requires_grad=True)
    old = torch.tensor([0.8, 2.5, 0.0, 0.8])
    returns = torch.tensor([2.0, 1.0, 0.5, 0.5])
    # clipped values 0.9, 2.4, 0.0, 0.9: errors max([1, 1, .25, .25], [1.21, 1.96, .25, .16])
    clipped = value_loss(values, old, returns, clip=0.1)
    assert clipped.item() == pytest.approx(0.5 * (1.21 + 1.96 + 0.25 + 0.25) / 4)
    (grad,) = torch.autograd.grad(clipped, values)
    close(grad, [0.0, 0.0, -0.125, 0.125])  # where the clipped error wins, the value cannot pull further
    assert value_loss(values, old, returns, clip=None).item() == pytest.approx(0.5 * (1 + 1 + 0.25 + 0.25) / 4)
