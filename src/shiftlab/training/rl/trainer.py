"""Multi-turn RL with verifier rewards: GRPO and the paper's PPO, in one loop that reads top to bottom.

Every step:
1. Roll out episodes through the same runner evaluation uses, so RL trains on exactly the
   multi-turn episodes (answers, verifier feedback, revisions) that evaluation scores. GRPO plays each
   seed `group_size` times; with dynamic sampling, groups whose rewards are all equal are dropped and
   more are played.
2. Turn every answered turn into a sample: its prompt (history and feedback included) as the policy
   tokenized it for generation, and the tokens it generated. Only those answer tokens are trained on.
3. Score the samples without gradients where the update needs it: log-probabilities before the
   update, under the frozen reference model (KL), and the value head's estimates (PPO).
4. Advantages: group-relative over each group's episode returns (GRPO, Dr. GRPO, RLOO), or GAE over
   the turns of each episode from per-turn rewards and values (PPO).
5. Update: `epochs` passes, `mini_batches` optimizer steps each, micro-batches accumulating
   gradients; GRPO takes a token-level clipped loss, PPO the paper's clipped loss on a sequence
   log-probability that weighs reasoning tokens by `thought_coef`, plus a clipped value loss.
6. Log (JSONL, TensorBoard, progress bar), evaluate on ID and OOD presets, checkpoint.

Under `accelerate launch` the processes split each step's groups between them and sum their gradients
(`parallel.py`): a run on N processes takes the steps the one-process run takes. The main process alone
writes the logs, checkpoints (each process adds its RNG state), evaluations and the final model; the
others wait for it. With `rollout_engine: vllm` the rollouts go through a colocated vLLM engine that gets
the policy's weights before every step (`vllm_rollout.py`).

Compute is counted as the paper does (App. C.3): 6*N per token trained on (forward and backward),
2*N per token only run forward (rollouts, scoring passes), on top of the start model's own compute.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.utils import OPTIMIZER_NAME, RNG_STATE_NAME, SAFE_MODEL_NAME, SCHEDULER_NAME, DistributedType
from accelerate.utils import load as load_pickled
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm
from transformers import get_scheduler

from shiftlab.evaluation import evaluate, scalar_metrics
from shiftlab.policies.hf import HFPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import check_env_options, get_preset, ood_presets
from shiftlab.training.common import add_lora, load_model, resolve_precision, save_final
from shiftlab.training.compute import (
    flop_parameters,
    forward_flops,
    read_compute,
    training_flops,
    write_compute,
)
from shiftlab.training.config import (
    ConfigError,
    check_checkpoint_weights,
    output_directory,
    resume_point,
    to_yaml,
)
from shiftlab.training.rl import objectives as obj
from shiftlab.training.rl import parallel, vllm_rollout
from shiftlab.training.rl.config import RESUME_KEYS, RLConfig
from shiftlab.training.rl.samples import Sample, action_start, collate, response_logprobs, sort_key
from shiftlab.training.run_log import JsonlLog

CHECKPOINT_PREFIX = "checkpoint-"
# A checkpoint is accelerate's state (the models it holds, numbered model.safetensors, model_1...: the policy,
# then the value head; the optimizer, the schedule, every RNG), the counters in state.json and compute.json.
# A LoRA policy is saved as its adapters alone, in ADAPTER_FILE, and takes no model number.
ADAPTER_FILE = "adapter_model.safetensors"
RNG_FILE = f"{RNG_STATE_NAME}_0.pkl"  # the main process's; each process writes its own


def evaluation_dir(output: Path, step: int) -> Path:
    """Where the evaluation at `step` of the run in `output` writes its trajectories and results.json."""
    return output / "eval" / f"step-{step:06d}"


class ValueHead(nn.Module):
    """The paper's critic: an MLP from the final hidden state at the last prompt token to a value."""

    def __init__(self, hidden_size: int, widths: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Linear(hidden_size, width), nn.ReLU()]
            hidden_size = width
        layers.append(nn.Linear(hidden_size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state.float()).squeeze(-1)


@dataclass
class Counters:
    """What a resumed run needs to continue exactly where the checkpoint was taken."""

    step: int = 0
    next_episode: int = 0  # the next training episode index (its env seed: data_seed + index)
    episodes: int = 0
    samples: int = 0
    tokens_trained: int = 0  # through forward and backward, every epoch
    tokens_rollout: int = 0  # prompts and answers of the rollouts (forward only)
    tokens_scored: int = 0  # scoring passes without gradients (forward only)


@dataclass
class RLResult:
    output_dir: Path
    final_model: Path
    steps: int
    flops: float
    log: list[dict[str, Any]] = field(default_factory=list)
    episodes_drawn: int = 0  # training episode indices 0 .. episodes_drawn - 1 were played (env seed data_seed + i)


def run_rl(config: RLConfig, progress: bool = True) -> RLResult:
    config.validate()
    preset = get_preset(config.task)
    eval_tasks = config.eval_tasks if config.eval_tasks is not None else [
        config.task, *(p.name for p in ood_presets(config.task))]
    try:
        check_env_options(list(dict.fromkeys([config.task, *eval_tasks])), config.env)
    except ValueError as error:
        raise ConfigError(f"config key 'env': {error}") from None
    if config.rollout_engine == "vllm":
        vllm_rollout.check_available()
    precision = resolve_precision(config.precision)
    # split_batches: the schedule advances once per optimizer step, not once per process.
    accelerator = Accelerator(mixed_precision={"fp32": "no"}.get(precision, precision),
                              cpu=not torch.cuda.is_available(),
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        raise ConfigError(f"the RL trainer runs data parallel (accelerate launch --multi_gpu), not "
                          f"{accelerator.distributed_type.value}")
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    output = output_directory(config.output_dir)
    resume_from = resume_point(config, output, (_checkpoints(output) or [None])[-1], "state.json", RESUME_KEYS)
    resumed = _read_checkpoint(config, resume_from) if resume_from is not None else None
    accelerator.wait_for_everyone()  # every process has read the saved config before it is rewritten
    if main:
        (output / "config.yaml").write_text(to_yaml(config), encoding="utf-8")

    if config.lora:
        accelerator.register_save_state_pre_hook(_save_adapters)
        accelerator.register_load_state_pre_hook(_load_adapters)
    torch.manual_seed(config.seed)

    # Model, optional LoRA, value head (PPO), frozen reference (KL), optimizer and schedule, built as a new
    # run builds them; a resumed run then reads their state from its checkpoint.
    model, processor = load_model(config.model)
    if config.lora:
        model = add_lora(model, config)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    value_head = ValueHead(_hidden_size(model), config.value_hidden) if config.algorithm == "ppo" else None
    reference = _reference_model(config)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if value_head is not None:
        parameters += list(value_head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    updates_per_step = config.epochs * config.mini_batches
    scheduler = _scheduler(config, optimizer, config.steps * updates_per_step)
    n_params = flop_parameters(model) + (sum(p.numel() for p in value_head.parameters()) if value_head else 0)
    base = read_compute(config.model) if Path(config.model).is_dir() else None
    base_flops = float(base["flops"]) if base and "flops" in base else 0.0

    counters = resumed or Counters()
    # evaluation_mode: placed and registered for checkpoints, but not wrapped in DDP (see parallel.py).
    model = accelerator.prepare_model(model, evaluation_mode=True)
    if value_head is not None:
        value_head = accelerator.prepare_model(value_head, evaluation_mode=True)
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    if resume_from is not None:
        _load_checkpoint(accelerator, resume_from)
    device = accelerator.device
    if reference is not None:
        reference.to(device)
    unwrapped = accelerator.unwrap_model(model)
    # The same sampling seed on every process: HFPolicy seeds each batch from its prompts, so processes
    # playing different episodes draw different samples, and a batch draws the same ones on any number.
    if config.rollout_engine == "vllm":
        policy = vllm_rollout.VLLMRollout(config, unwrapped, processor, accelerator)
    else:
        policy = HFPolicy(unwrapped, processor, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                          top_p=config.top_p, batch_size=config.rollout_batch_size, seed=config.seed)
    pad_id = policy.tokenizer.pad_token_id
    # Only PPO weighs reasoning and action tokens apart; GRPO has no use for the split.
    answer_key = preset.owner.answer_key if config.algorithm == "ppo" else None
    scoring_temperature = config.temperature if config.temperature > 0 else 1.0
    share = not config.gradient_checkpointing  # a shared prompt's cache must keep its activations

    log = JsonlLog(output / "log.jsonl")
    if main:
        log.truncate_after(counters.step)
    writer = _tensorboard(config, output, counters.step) if main else None

    def flops() -> dict[str, float]:
        trained = training_flops(n_params, counters.tokens_trained)
        forward = forward_flops(n_params, counters.tokens_rollout + counters.tokens_scored)
        return {"flops": base_flops + trained + forward, "flops_train": trained, "flops_inference": forward}

    def record(entry: dict[str, Any]) -> None:
        if not main:
            return
        log.write(entry)
        if writer is not None:
            for key, value in entry.items():
                if isinstance(value, (int, float)) and key != "step":
                    writer.add_scalar(key, value, entry["step"])
            writer.flush()

    def evaluate_now(step: int) -> None:
        """On the main process, while the others wait."""
        if main:
            _evaluate(step)
        accelerator.wait_for_everyone()

    def _evaluate(step: int) -> None:
        model.eval()
        judge = HFPolicy(unwrapped, processor, max_new_tokens=config.max_new_tokens,
                         temperature=config.eval_temperature, batch_size=config.rollout_batch_size, seed=config.seed)
        with accelerator.autocast():
            results = evaluate(eval_tasks, judge, config.eval_episodes, evaluation_dir(output, step),
                               batch_size=config.rollout_batch_size, prompt=config.prompt, **config.env)
        entry: dict[str, Any] = {"kind": "eval", "step": step, **flops()}
        for task, metrics in results.items():
            entry.update({f"eval/{task}/{key}": value for key, value in scalar_metrics(metrics).items()})
        record(entry)

    if config.eval_steps and eval_tasks and config.eval_at_start and counters.step == 0:
        evaluate_now(0)

    bar = tqdm(total=config.steps, initial=counters.step, desc=f"rl {config.algorithm} {config.task}",
               disable=not (progress and main), dynamic_ncols=True)
    try:
        while counters.step < config.steps:
            step = counters.step + 1
            started = time.perf_counter()

            # 1. Rollouts: this process plays its shard of each round's groups. The groups kept are the
            # first prompts_per_step in the order of the one-process run: by round, then by process.
            model.eval()
            if config.rollout_engine == "vllm":
                policy.sync(unwrapped)
            rounds_kept: list[list[list[Any]]] = []  # per round, this process's groups that passed
            kept_counts: list[list[int]] = []  # per round, the groups each process kept
            rounds = dropped = 0
            policy_tokens = 0
            while sum(map(sum, kept_counts)) < config.prompts_per_step and rounds < config.sampling_rounds:
                policy.reseed(int(np.random.SeedSequence([config.seed, step, rounds]).generate_state(1)[0]))
                first = counters.next_episode
                counters.next_episode += config.prompts_per_step
                draws = parallel.shard([_pool_index(config, i) for i in range(first, counters.next_episode)],
                                       rank, world)
                indices = [index for index in draws for _ in range(config.group_size)]
                trajectories = []
                if indices:
                    with accelerator.autocast():
                        trajectories = run_episodes(preset, policy, indices, seed=config.data_seed,
                                                    batch_size=config.rollout_batch_size, evaluation=False,
                                                    prompt=config.prompt, **config.env)
                # Every token through the model in the rollout, dropped groups included: each turn's
                # prompt (as the policy encoded it) and answer.
                policy_tokens += sum(len(t.prompt_ids) + len(t.token_ids) for tr in trajectories for t in tr.turns)
                by_seed: dict[int, list[Any]] = defaultdict(list)
                for trajectory in trajectories:
                    by_seed[trajectory.episode].append(trajectory)
                passed = []
                for index in dict.fromkeys(draws):
                    group = by_seed[index]
                    if config.dynamic_sampling and len({_episode_score(config, t) for t in group}) < 2:
                        dropped += 1
                        continue
                    passed.append(group)
                rounds_kept.append(passed)
                kept_counts.append(parallel.gather(accelerator, len(passed)))
                rounds += 1
                if not config.dynamic_sampling:
                    break
            groups: list[list[Any]] = []
            group_rounds: list[int] = []
            room = config.prompts_per_step
            for r, counts in enumerate(kept_counts):
                before = sum(counts[:rank])
                take = max(0, min(counts[rank], room - before))
                groups += rounds_kept[r][:take]
                group_rounds += [r] * take
                room = max(0, room - sum(counts))
            rollout_seconds = time.perf_counter() - started

            # 2. Samples: one per answered turn.
            samples: list[Sample] = []
            sample_rounds: list[int] = []
            episodes = [t for group in groups for t in group]
            e = -1
            for g, group in enumerate(groups):
                for trajectory in group:
                    e += 1
                    for k, turn in enumerate(trajectory.turns):
                        last = k == len(trajectory.turns) - 1
                        reward = turn.reward if config.rewards == "per_attempt" else float(trajectory.success and last)
                        if config.overlong == "penalty":
                            reward += obj.overlong_penalty(len(turn.token_ids), config.max_new_tokens,
                                                           config.overlong_buffer, config.overlong_penalty)
                        samples.append(Sample(torch.tensor(turn.prompt_ids, dtype=torch.long),
                                              torch.tensor(turn.token_ids, dtype=torch.long), dict(turn.prompt_extras),
                                              action_start(policy.tokenizer, turn.token_ids, answer_key), reward,
                                              g, e, k, last))
                        sample_rounds.append(group_rounds[g])

            # 3. Scoring without gradients.
            tokens_scored = 0
            need_old = (config.epochs > 1 or config.mini_batches > 1 or config.algorithm == "ppo"
                        or (config.kl_coef > 0 and config.kl_placement == "reward"))
            need_ref = reference is not None or (config.kl_coef > 0 and config.lora)
            if samples and (need_old or need_ref):
                with torch.no_grad(), accelerator.autocast():
                    for micro in _micro_batches(samples, config.micro_batch_size):
                        batch = collate(micro, pad_id, device, share)
                        if need_old:
                            logp, state, _ = response_logprobs(model, batch, scoring_temperature,
                                                               hidden=value_head is not None)
                            values = value_head(state) if value_head is not None else None
                            tokens_scored += batch.tokens
                            for row, sample in enumerate(micro):
                                sample.logp_old = _row(logp, batch.mask, row)
                                if values is not None:
                                    sample.value_old = float(values[row])
                        if need_ref:
                            logp_ref = _reference_logprobs(model, reference, batch, scoring_temperature)
                            tokens_scored += batch.tokens
                            for row, sample in enumerate(micro):
                                sample.logp_ref = _row(logp_ref, batch.mask, row)
            if config.kl_coef > 0 and config.kl_placement == "reward":
                for sample in samples:
                    sample.reward -= config.kl_coef * float((sample.logp_old - sample.logp_ref).sum())

            # 4. Advantages. Overlong filtering then leaves cut answers out of the loss: their reward says
            # more about the length limit than about the answer.
            _advantages(config, samples, len(episodes), accelerator)
            truncated = [s.response_ids.numel() >= config.max_new_tokens for s in samples]
            n_truncated, n_answered = sum(truncated), len(samples)
            if config.overlong == "filter":
                keep = [not cut for cut in truncated]
                samples = [s for s, k in zip(samples, keep, strict=True) if k]
                sample_rounds = [r for r, k in zip(sample_rounds, keep, strict=True) if k]

            # The step's samples in the one-process order (by round, then process), as every process sees
            # them: their answer lengths, and where this process's own sit among them.
            lengths: list[int] = []
            positions: dict[int, int] = {}  # position in the step -> this process's sample
            shares = parallel.gather(accelerator, [(r, int(s.response_ids.numel()))
                                                   for r, s in zip(sample_rounds, samples, strict=True)])
            for r in range(rounds):
                for k, share_k in enumerate(shares):
                    for i, (sample_round, length) in enumerate(share_k):
                        if sample_round == r:
                            if k == rank:
                                positions[len(lengths)] = i
                            lengths.append(length)

            # 5. Update: every process runs the same mini-batches of the step's samples, each on its own
            # ones, normalised by the mini-batch's totals over all processes; the gradients are then summed.
            model.train()
            metrics: dict[str, list[float]] = defaultdict(list)
            generator = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, step]).generate_state(1)[0]))
            update_started = time.perf_counter()
            stopped = False
            tokens_trained = 0
            for _epoch in range(config.epochs if lengths else 0):
                order = torch.randperm(len(lengths), generator=generator).tolist()
                for part in np.array_split(np.array(order), config.mini_batches):
                    if not len(part) or stopped:
                        continue
                    chosen = [samples[positions[i]] for i in part.tolist() if i in positions]
                    totals = {"num_sequences": float(len(part)),
                              "num_tokens": float(sum(lengths[i] for i in part.tolist())),
                              "max_tokens": config.max_new_tokens}
                    optimizer.zero_grad(set_to_none=True)
                    sums: dict[str, list[float | None]] = {}
                    for micro in _micro_batches(chosen, config.micro_batch_size):
                        batch = collate(micro, pad_id, device, share)
                        with accelerator.autocast():
                            loss, parts = _micro_loss(config, model, value_head, reference, micro, batch,
                                                      scoring_temperature, totals)
                        accelerator.backward(loss)
                        tokens_trained += batch.tokens
                        weights = _metric_weights(config, len(micro), float(batch.mask.sum()))
                        for key, value in parts.items():
                            weight = weights.get(key, weights[None])
                            entry = sums.setdefault(key, [0.0, None if weight is None else 0.0])
                            entry[0] += value * (1.0 if weight is None else weight)
                            if weight is not None:
                                entry[1] += weight
                    means = parallel.weighted_means(accelerator, sums)
                    for key, value in means.items():
                        metrics[key].append(value)
                    # The KL guard: a mini-batch that moved the policy too far from the one that sampled is
                    # not applied, and the step's remaining updates are skipped.
                    if config.target_kl is not None and means.get("approx_kl", 0.0) > config.target_kl:
                        stopped = True
                        continue
                    parallel.sum_gradients(accelerator, parameters)
                    grad_norm = accelerator.clip_grad_norm_(parameters, config.max_grad_norm)
                    metrics["grad_norm"].append(float(grad_norm))
                    optimizer.step()
                    scheduler.step()
            update_seconds = time.perf_counter() - update_started

            # Counts and means of the step over all processes.
            step_sums = parallel.summed(accelerator, {
                "episodes": len(episodes), "samples": len(samples), "answered": n_answered, "truncated": n_truncated,
                "tokens_trained": tokens_trained, "tokens_scored": tokens_scored, "tokens_rollout": policy_tokens,
                "groups_kept": len(groups), "groups_dropped": dropped,
                "turn_reward": sum(s.reward for s in samples),
                "episode_score": sum(_episode_score(config, t) for t in episodes),
                "success": sum(float(t.success) for t in episodes), "turns": sum(len(t.turns) for t in episodes),
                "answer_tokens": sum(int(s.response_ids.numel()) for s in samples)})
            counters.step = step
            counters.episodes += int(step_sums["episodes"])
            counters.samples += int(step_sums["samples"])
            counters.tokens_trained += int(step_sums["tokens_trained"])
            counters.tokens_scored += int(step_sums["tokens_scored"])
            counters.tokens_rollout += int(step_sums["tokens_rollout"])
            n_samples, n_episodes = int(step_sums["samples"]), int(step_sums["episodes"])
            answer_tokens = int(step_sums["answer_tokens"])
            seconds = time.perf_counter() - started
            entry = {
                "kind": "train", "step": step, **flops(),
                "episodes": counters.episodes, "samples": counters.samples,
                "tokens_trained": counters.tokens_trained, "tokens_rollout": counters.tokens_rollout,
                "reward/turn_mean": step_sums["turn_reward"] / n_samples if n_samples else 0.0,
                "reward/episode_mean": step_sums["episode_score"] / n_episodes if n_episodes else 0.0,
                "success_rate": step_sums["success"] / n_episodes if n_episodes else 0.0,
                "turns_per_episode": step_sums["turns"] / n_episodes if n_episodes else 0.0,
                "answer_tokens_mean": answer_tokens / max(n_samples, 1),
                "truncated_answers": step_sums["truncated"] / step_sums["answered"] if step_sums["answered"] else 0.0,
                "kl_stopped": float(stopped),
                "groups_kept": int(step_sums["groups_kept"]), "groups_dropped": int(step_sums["groups_dropped"]),
                "sampling_rounds": rounds,
                "lr": scheduler.get_last_lr()[0],
                "seconds/step": seconds, "seconds/rollout": rollout_seconds, "seconds/update": update_seconds,
                "samples_per_second": n_samples / seconds if seconds > 0 else 0.0,
                "answer_tokens_per_second": answer_tokens / seconds if seconds > 0 else 0.0,
                **{key: _mean(values) for key, values in sorted(metrics.items())},
            }
            record(entry)
            bar.update(1)
            bar.set_postfix(reward=f"{entry['reward/episode_mean']:.2f}", success=f"{entry['success_rate']:.2f}")

            # 6. Evaluation and checkpoint.
            if config.eval_steps and eval_tasks and (step % config.eval_steps == 0 or step == config.steps):
                evaluate_now(step)
            if step % config.save_steps == 0 or step == config.steps:
                _save_checkpoint(output, config, counters, accelerator, n_params, flops())
    finally:  # a failing step leaves the bar closed, so its error starts on a line of its own
        bar.close()
    if writer is not None:
        writer.close()

    final = output / "final"
    totals = flops()
    if main:
        save_final(accelerator.unwrap_model(model), processor, final)
        if value_head is not None:
            _save_value_head(value_head, final)
        write_compute(final, step=counters.step, tokens=counters.tokens_trained, parameters=n_params, base=base,
                      tokens_rollout=counters.tokens_rollout, tokens_scored=counters.tokens_scored,
                      flops_total=totals["flops"], flops_train=totals["flops_train"],
                      flops_inference=totals["flops_inference"])
    accelerator.wait_for_everyone()
    drawn = counters.next_episode if config.train_episodes is None else min(counters.next_episode, config.train_episodes)
    return RLResult(output, final, counters.step, totals["flops"], log.read(), drawn)


def _pool_index(config: RLConfig, index: int) -> int:
    """The episode (env seed data_seed + it) that the `index`-th draw plays: a new one each time, or, with a
    fixed pool, the pool in turn."""
    return index if config.train_episodes is None else index % config.train_episodes


def _episode_score(config: RLConfig, trajectory: Any) -> float:
    if config.rewards == "outcome":
        return float(trajectory.success)
    return float(trajectory.total_reward)


def _advantages(config: RLConfig, samples: list[Sample], n_episodes: int, accelerator: Any) -> None:
    """Fill `advantage` (and PPO's value `target`) of every sample. GRPO's groups are whole on each
    process; PPO whitens over the samples of all processes."""
    if config.algorithm == "grpo":
        if not samples:
            return
        scores = torch.zeros(n_episodes, dtype=torch.float64)
        groups = torch.zeros(n_episodes, dtype=torch.long)
        for sample in samples:
            scores[sample.episode] += sample.reward
            groups[sample.episode] = sample.group
        advantages = obj.group_advantages(scores, groups, config.advantage)
        for sample in samples:
            sample.advantage = float(advantages[sample.episode])
        return
    # PPO: samples are in episode order, turn by turn; GAE runs over each episode's turns.
    if not samples:
        if accelerator.num_processes > 1:  # the others whiten with this process taking part
            parallel.whiten(accelerator, torch.zeros(0, dtype=torch.float64))
        return
    rewards = torch.tensor([s.reward for s in samples], dtype=torch.float64)
    values = torch.tensor([s.value_old for s in samples], dtype=torch.float64)
    dones = torch.tensor([s.last for s in samples])
    advantages, returns = obj.gae(rewards, values, dones, config.gamma, config.gae_lambda)
    if accelerator.num_processes == 1:
        advantages = obj.whiten(advantages)
    else:
        advantages = parallel.whiten(accelerator, advantages)
    for sample, advantage, target in zip(samples, advantages.tolist(), returns.tolist(), strict=True):
        sample.advantage, sample.target = advantage, target


def _micro_loss(config: RLConfig, model: Any, value_head: Any, reference: Any, micro: list[Sample], batch: Any,
                temperature: float, totals: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    logp, state, entropy = response_logprobs(model, batch, temperature, hidden=value_head is not None,
                                             entropy_grad=config.entropy_coef > 0)
    # Without a scoring pass (one update on fresh samples) the policy that sampled is the one updated.
    fresh = micro[0].logp_old is None
    logp_old = logp.detach() if fresh else _stack([s.logp_old for s in micro], logp)
    advantages = torch.tensor([s.advantage for s in micro], dtype=logp.dtype, device=logp.device)
    parts: dict[str, float] = {"entropy": float(entropy.detach())}
    if config.algorithm == "grpo":
        token_losses, stats = obj.ppo_clip_loss(logp, logp_old, advantages, batch.mask, config.clip_low,
                                                config.clip_high, config.dual_clip)
        loss = obj.aggregate(token_losses, batch.mask, config.loss_aggregation, **totals)
    else:
        sequence = obj.sequence_logprob(logp, batch.mask, batch.action_mask, config.thought_coef)
        sequence_old = obj.sequence_logprob(logp_old, batch.mask, batch.action_mask, config.thought_coef)
        losses, stats = obj.sequence_ppo_loss(sequence, sequence_old, advantages, config.ppo_clip)
        loss = losses.sum() / totals["num_sequences"]
        values = value_head(state)
        values_old = torch.tensor([s.value_old for s in micro], dtype=values.dtype, device=values.device)
        targets = torch.tensor([s.target for s in micro], dtype=values.dtype, device=values.device)
        value_loss = obj.value_loss(values, values_old, targets, config.value_clip) * len(micro) / totals[
            "num_sequences"]
        loss = loss + config.value_coef * value_loss
        parts["value_loss"] = float(value_loss.detach()) * totals["num_sequences"] / len(micro)
    if config.kl_coef > 0 and config.kl_placement == "loss":
        logp_ref = _stack([s.logp_ref for s in micro], logp)
        kl = obj.kl_penalty(logp, logp_ref, config.kl_estimator, config.kl_straight_through)
        kl_loss = obj.aggregate(kl, batch.mask, config.loss_aggregation, **totals)
        loss = loss + config.kl_coef * kl_loss
        parts["kl"] = float((kl.detach() * batch.mask).sum() / batch.mask.sum().clamp(min=1))
    if config.entropy_coef > 0:
        loss = loss - config.entropy_coef * entropy * len(micro) / totals["num_sequences"]
    parts["loss"] = float(loss.detach())
    parts.update({key: float(value) for key, value in stats.items()})
    return loss, parts


# PPO's statistics per sequence; the rest are means over answer tokens.
_SEQUENCE_METRICS = ("ratio_mean", "clip_frac", "value_loss")


def _metric_weights(config: RLConfig, sequences: int, tokens: float) -> dict[str | None, float | None]:
    """How a micro-batch's figure counts in the update's: by its tokens (None: the default), by its
    sequences, or summed (`loss`, each micro-batch's share of the update's loss), so that the figures
    do not depend on how the samples were split into micro-batches or processes."""
    weights: dict[str | None, float | None] = {None: tokens, "loss": None}
    if config.algorithm == "ppo":
        weights.update(dict.fromkeys(_SEQUENCE_METRICS, float(sequences)))
    return weights


def _micro_batches(samples: Sequence[Sample], size: int) -> list[list[Sample]]:
    """Samples sharing a prompt together (it is then run once), and of similar length, so little of
    each forward pass is padding."""
    ordered = sorted(samples, key=sort_key)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _row(values: torch.Tensor, mask: torch.Tensor, row: int) -> torch.Tensor:
    n = int(mask[row].sum())
    return values[row, values.shape[1] - n :].detach().float().cpu()


def _stack(rows: Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Right-aligned [B, R] from 1-D per-sample tensors, matching `like`."""
    out = torch.zeros_like(like)
    for i, row in enumerate(rows):
        if row.numel():
            out[i, like.shape[1] - row.numel() :] = row.to(out.device, out.dtype)
    return out.detach()


def _reference_logprobs(model: Any, reference: Any, batch: Any, temperature: float) -> torch.Tensor:
    if reference is not None:
        return response_logprobs(reference, batch, temperature)[0]
    with model.disable_adapter():  # LoRA: the start model is the base without adapters
        return response_logprobs(model, batch, temperature)[0]


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0



def _hidden_size(model: Any) -> int:
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.hidden_size)


def _reference_model(config: RLConfig):
    """The frozen start model, for the KL term; LoRA runs use the base under the adapters instead."""
    if config.kl_coef <= 0 or config.lora:
        return None
    reference, _ = load_model(config.model)
    reference.eval().requires_grad_(False)
    return reference


def _scheduler(config: RLConfig, optimizer: Any, total: int):
    name = config.lr_scheduler
    if name == "constant":
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=total)


def _tensorboard(config: RLConfig, output: Path, step: int):
    if "tensorboard" not in config.report_to:
        return None
    return SummaryWriter(str(output / "tensorboard"), purge_step=step + 1 if step else None)


def _save_value_head(value_head: Any, directory: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in value_head.state_dict().items()}
    save_file(state, str(directory / "value_head.safetensors"))


def _save_checkpoint(output: Path, config: RLConfig, counters: Counters, accelerator: Any, n_params: int,
                     flops: dict[str, float]) -> Path:
    """Written under a temporary name and renamed, so a killed run never leaves half a checkpoint. Every
    process writes its RNG state into it (accelerate); the main process the rest."""
    final = output / f"{CHECKPOINT_PREFIX}{counters.step:06d}"
    tmp = output / f"{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "state.json").write_text(json.dumps({"counters": asdict(counters)}, indent=1), encoding="utf-8")
        write_compute(tmp, step=counters.step, tokens=counters.tokens_trained, parameters=n_params,
                      tokens_rollout=counters.tokens_rollout, flops_total=flops["flops"])
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        if config.save_total_limit:
            for old in _checkpoints(output)[: -config.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _read_checkpoint(config: RLConfig, path: Path) -> Counters:
    """The counters of the checkpoint a run resumes from, after checking it is whole. A checkpoint is
    written under a temporary name and renamed when whole; one that is not was edited or damaged since,
    and is named rather than half-loaded."""
    try:
        values = json.loads((path / "state.json").read_text(encoding="utf-8"))["counters"]
        counters = Counters(**values)
        if not all(type(v) is int and v >= 0 for v in values.values()):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise ConfigError(f"checkpoint {str(path)!r} has no readable state.json; delete it to resume from the "
                          "one before, or use a new output_dir") from None
    missing = [name for name in _checkpoint_files(config) if not (path / name).is_file()]
    if missing:
        raise ConfigError(f"checkpoint {str(path)!r} is incomplete (no {', '.join(missing)}); delete it to resume "
                          "from the one before, or use a new output_dir")
    check_checkpoint_weights(path)
    return counters


def _checkpoint_files(config: RLConfig) -> list[str]:
    """What `Accelerator.save_state` (with the adapter hook) writes for this run's models."""
    numbered = (0 if config.lora else 1) + (config.algorithm == "ppo")
    models = [f"{SAFE_MODEL_NAME}{f'_{i}' if i else ''}.safetensors" for i in range(numbered)]
    return [*([ADAPTER_FILE] if config.lora else []), *models, f"{OPTIMIZER_NAME}.bin", f"{SCHEDULER_NAME}.bin",
            RNG_FILE]


def _load_checkpoint(accelerator: Any, path: Path) -> None:
    """The models, optimizer, schedule and RNG states of a checkpoint, into the objects `accelerator`
    prepared. accelerate only logs an RNG state it cannot read, so that file is read here first."""
    try:
        if "torch_manual_seed" not in load_pickled(path / RNG_FILE):
            raise KeyError("torch_manual_seed")
        accelerator.load_state(str(path))
    except Exception as error:  # noqa: BLE001 - unpickling, safetensors and shape errors of a damaged file
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"checkpoint {str(path)!r} has a damaged model, optimizer, scheduler or RNG state "
                          f"({type(error).__name__}: {detail}); delete it to resume from the one before") from None


def _save_adapters(models: list, weights: list, directory: str) -> None:
    """accelerate's save hook for LoRA runs: the policy's adapters alone, as the base under them is the
    start model, unchanged; its full weights are taken off accelerate's list."""
    for index, model in enumerate(models):
        if isinstance(model, peft.PeftModel):
            state = {k: v.contiguous() for k, v in peft.get_peft_model_state_dict(model).items()}
            if PartialState().is_main_process:
                save_file(state, str(Path(directory) / ADAPTER_FILE))
            weights.pop(index)
            return


def _load_adapters(models: list, directory: str) -> None:
    """accelerate's load hook matching `_save_adapters`."""
    for index, model in enumerate(models):
        if isinstance(model, peft.PeftModel):
            state = load_file(str(Path(directory) / ADAPTER_FILE))
            if state.keys() != peft.get_peft_model_state_dict(model).keys():
                raise ValueError("the adapters do not match the run's LoRA settings")
            peft.set_peft_model_state_dict(model, state)
            models.pop(index)
            return


def _checkpoints(output: Path) -> list[Path]:
    found = [p for p in output.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and (p / "state.json").is_file()
             and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


__all__ = ["RLConfig", "RLResult", "ValueHead", "run_rl"]
