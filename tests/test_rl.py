"""The RL trainer on real tiny models: GRPO and PPO learn a toy verifiable task, only answer tokens
are trained on, a resumed run reproduces the uninterrupted one, and GP-L and V-IRL-L run end to end
with evaluation, compute accounting, checkpoints and the CLI."""

import json
import math

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402
import toy_task  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from shiftlab.cli import main  # noqa: E402
from shiftlab.policies.base import Request  # noqa: E402
from shiftlab.policies.hf import HFPolicy  # noqa: E402
from shiftlab.training.base_model import build_base_model  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402
from shiftlab.training.rl import objectives as obj  # noqa: E402
from shiftlab.training.rl.config import RLConfig  # noqa: E402
from shiftlab.training.rl.samples import Sample, action_start, collate, response_logprobs  # noqa: E402
from shiftlab.training.rl.trainer import run_rl  # noqa: E402

TIMING = ("seconds/step", "seconds/rollout", "seconds/update", "samples_per_second", "answer_tokens_per_second")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(build_base_model(tmp_path_factory.mktemp("lm") / "model", kind="lm", size="tiny", seed=0))


@pytest.fixture
def toy():
    with toy_task.registered() as preset:
        yield preset


def _config(model, out, **values):
    base = {"model": model, "output_dir": str(out), "task": "gp-l", "steps": 2, "prompts_per_step": 2,
            "group_size": 2, "max_new_tokens": 16, "eval_steps": 0, "save_steps": 1000, "report_to": ["none"],
            "learning_rate": 1e-3}
    return load_config(RLConfig, overrides={**base, **values})


def _train_entries(result):
    return [e for e in result.log if e["kind"] == "train"]


# --- learning on the toy task -------------------------------------------------------------------

def test_grpo_raises_the_reward(tiny_lm, toy, tmp_path):
    result = run_rl(_config(tiny_lm, tmp_path, task=toy, steps=25, prompts_per_step=8, group_size=4,
                            max_new_tokens=12, learning_rate=2e-2, micro_batch_size=32), progress=False)
    rewards = [e["reward/episode_mean"] for e in _train_entries(result)]
    assert len(rewards) == 25
    assert sum(rewards[-3:]) / 3 > 0.3 > 3 * sum(rewards[:3]) / 3


def test_ppo_raises_the_reward(tiny_lm, toy, tmp_path):
    result = run_rl(_config(tiny_lm, tmp_path, task=toy, algorithm="ppo", steps=25, prompts_per_step=32,
                            group_size=1, epochs=2, max_new_tokens=12, learning_rate=1e-2, value_hidden=[32],
                            micro_batch_size=32), progress=False)
    entries = _train_entries(result)
    rewards = [e["reward/episode_mean"] for e in entries]
    assert sum(rewards[-3:]) / 3 > 0.3 > 3 * sum(rewards[:3]) / 3
    assert all(math.isfinite(e["value_loss"]) for e in entries)
    assert (result.final_model / "value_head.safetensors").is_file()


# --- what is trained on --------------------------------------------------------------------------

def _sample(prompt, response, action=0):
    return Sample(torch.tensor(prompt), torch.tensor(response), {}, action, 0.0, 0, 0, 0, True)


def test_collate_masks_everything_but_the_answer():
    batch = collate([_sample([5, 6, 7], [8, 9], action=1), _sample([5], [8, 9, 10])], pad_id=0)
    assert batch.inputs["input_ids"].tolist() == [[5, 6, 7, 8, 9], [0, 5, 8, 9, 10]]
    assert batch.inputs["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert batch.inputs["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]]
    assert batch.response.tolist() == [[0, 8, 9], [8, 9, 10]]
    assert batch.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert batch.action_mask.tolist() == [[0, 0, 1], [1, 1, 1]]
    assert batch.last_prompt.tolist() == [2, 1] and batch.keep == 4 and batch.tokens == 9


def test_answer_logprobs_match_each_sample_alone_and_only_answers_get_gradients(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    samples = [_sample([1, 40, 41, 42, 43], [50, 51]), _sample([1, 60], [70, 71, 72, 73, 74])]
    batch = collate(samples, pad_id=0)
    logp, _, _ = response_logprobs(model, batch)
    for row, sample in enumerate(samples):
        ids = torch.cat([sample.prompt_ids, sample.response_ids]).unsqueeze(0)
        alone = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        n = sample.response_ids.numel()
        expected = alone[-n:].gather(-1, sample.response_ids.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(logp[row, -n:], expected, atol=1e-5, rtol=1e-5)
    # The loss only reaches answer tokens: padding columns of the answer tensor get no gradient.
    leaf = logp.detach().requires_grad_(True)
    losses, _ = obj.ppo_clip_loss(leaf, leaf.detach(), torch.tensor([1.0, -1.0]), batch.mask)
    obj.aggregate(losses, batch.mask, "token-mean").backward()
    assert leaf.grad[0, :3].abs().sum() == 0 and (leaf.grad[0, 3:] != 0).all() and (leaf.grad[1] != 0).all()


def test_trainer_logprobs_match_the_sampler(tiny_lm):
    """The trainer scores answers under the prompt ids generation started from (left padding, positions)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    policy = HFPolicy(model, tokenizer, max_new_tokens=12, temperature=0.7, seed=3)
    messages = [[{"role": "user", "content": "Cards: 4, 7, K, 2. Make 24."}], [{"role": "user", "content": "Go"}]]
    responses = policy.generate([Request("gp-l", m) for m in messages])
    samples = [_sample(list(r.prompt_ids), list(r.token_ids)) for r in responses]
    assert [r.prompt_ids for r in responses] == [tuple(policy.prompt_inputs(m)["input_ids"][0].tolist())
                                                 for m in messages]
    logp, _, _ = response_logprobs(model, collate(samples, tokenizer.pad_token_id), temperature=0.7)
    for row, response in enumerate(responses):
        n = len(response.token_ids)
        torch.testing.assert_close(logp[row, -n:], torch.tensor(response.logprobs), atol=1e-4, rtol=1e-4)


def test_a_repeated_batch_gets_fresh_samples(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    policy = HFPolicy(model, AutoTokenizer.from_pretrained(tiny_lm), max_new_tokens=8, temperature=1.0, seed=0)
    batch = [Request("gp-l", [{"role": "user", "content": "hello"}])] * 2
    first, second = policy.generate(batch), policy.generate(batch)
    assert [r.token_ids for r in first] != [r.token_ids for r in second]
    policy.reseed(0)
    assert [r.token_ids for r in policy.generate(batch)] == [r.token_ids for r in first]


def test_action_start_finds_the_answer_key(tiny_lm):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    text = '{"cards": ["4", "7"], "formula": "4*7=28"}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = action_start(tokenizer, ids, "formula")
    assert tokenizer.decode(ids[start:]).lstrip().startswith('"formula"') or '"formula' in tokenizer.decode(
        ids[start : start + 3])
    assert '"formula"' not in tokenizer.decode(ids[:start])
    assert action_start(tokenizer, ids, None) == 0
    assert action_start(tokenizer, ids, "action") == len(ids) - 4  # missing key: the last tokens


# --- resuming -----------------------------------------------------------------------------------

def test_resume_reproduces_the_uninterrupted_run(tiny_lm, tmp_path):
    settings = {"algorithm": "ppo", "epochs": 2, "mini_batches": 2, "value_hidden": [16], "save_steps": 2,
                "group_size": 2, "kl_coef": 0.1}
    whole = run_rl(_config(tiny_lm, tmp_path / "whole", steps=4, **settings), progress=False)
    run_rl(_config(tiny_lm, tmp_path / "cut", steps=2, **settings), progress=False)
    resumed = run_rl(_config(tiny_lm, tmp_path / "cut", steps=4, **settings), progress=False)

    def strip(entries):
        return [{k: v for k, v in e.items() if k not in TIMING} for e in entries]

    assert strip(resumed.log) == strip(whole.log) and len(whole.log) == 4
    a, b = (load_file(str(r.final_model / "model.safetensors")) for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], load_file(tiny_lm + "/model.safetensors")["lm_head.weight"])
    assert torch.equal(load_file(str(whole.final_model / "value_head.safetensors"))["net.2.weight"],
                       load_file(str(resumed.final_model / "value_head.safetensors"))["net.2.weight"])


def test_a_killed_lora_run_resumes_exactly(tiny_lm, toy, tmp_path, monkeypatch):
    """Killed right after its step-2 checkpoint, then rerun with the same settings (cosine schedule)."""
    from shiftlab.training.rl import trainer

    settings = {"task": toy, "steps": 3, "save_steps": 2, "lora": True, "lora_r": 4, "lr_scheduler": "cosine",
                "learning_rate": 1e-2, "epochs": 2}
    whole = run_rl(_config(tiny_lm, tmp_path / "whole", **settings), progress=False)
    save = trainer._save_checkpoint

    def save_then_die(*args, **kwargs):
        path = save(*args, **kwargs)
        raise KeyboardInterrupt(path)

    monkeypatch.setattr(trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_rl(_config(tiny_lm, tmp_path / "cut", **settings), progress=False)
    monkeypatch.setattr(trainer, "_save_checkpoint", save)
    resumed = run_rl(_config(tiny_lm, tmp_path / "cut", **settings), progress=False)
    keep = [{k: v for k, v in e.items() if k not in TIMING} for e in resumed.log]
    assert keep == [{k: v for k, v in e.items() if k not in TIMING} for e in whole.log]
    a, b = (load_file(str(r.final_model / "model.safetensors")) for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    key = "model.layers.0.self_attn.q_proj.weight"  # adapted by LoRA, merged into the final model
    assert not torch.equal(a[key], load_file(tiny_lm + "/model.safetensors")[key])


def test_resume_refuses_a_changed_run(tiny_lm, tmp_path):
    run_rl(_config(tiny_lm, tmp_path, steps=1, save_steps=1), progress=False)
    with pytest.raises(ConfigError, match="group_size"):
        run_rl(_config(tiny_lm, tmp_path, steps=2, group_size=3), progress=False)
    with pytest.raises(ConfigError, match="already has checkpoints"):
        run_rl(_config(tiny_lm, tmp_path, steps=2, resume="never"), progress=False)
    with pytest.raises(ConfigError, match="lora_alpha"):
        run_rl(_config(tiny_lm, tmp_path, steps=2, lora_alpha=8), progress=False)


def test_checkpoints_are_accelerate_state_with_lora_adapters_alone(tiny_lm, tmp_path):
    common = {"steps": 1, "save_steps": 1, "algorithm": "ppo", "group_size": 1, "value_hidden": [8]}
    run_rl(_config(tiny_lm, tmp_path / "full", **common), progress=False)
    run_rl(_config(tiny_lm, tmp_path / "lora", lora=True, lora_r=2, **common), progress=False)
    state = {"compute.json", "state.json", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"}
    full, lora = (tmp_path / name / "checkpoint-000001" for name in ("full", "lora"))
    assert {p.name for p in full.iterdir()} == state | {"model.safetensors", "model_1.safetensors"}
    assert {p.name for p in lora.iterdir()} == state | {"adapter_model.safetensors", "model.safetensors"}
    adapters = load_file(str(lora / "adapter_model.safetensors"))
    assert adapters and all("lora_" in key for key in adapters)
    assert set(load_file(str(lora / "model.safetensors"))) == set(load_file(str(full / "model_1.safetensors")))


def test_a_damaged_or_incomplete_checkpoint_is_named(tiny_lm, tmp_path):
    run_rl(_config(tiny_lm, tmp_path, steps=1, save_steps=1), progress=False)
    checkpoint = tmp_path / "checkpoint-000001"
    rng = (checkpoint / "random_states_0.pkl").read_bytes()
    (checkpoint / "random_states_0.pkl").write_bytes(b"junk")  # accelerate alone would only log it
    with pytest.raises(ConfigError, match="checkpoint-000001' has a damaged model, optimizer, scheduler or RNG"):
        run_rl(_config(tiny_lm, tmp_path, steps=2), progress=False)
    (checkpoint / "random_states_0.pkl").write_bytes(rng)
    (checkpoint / "optimizer.bin").unlink()
    with pytest.raises(ConfigError, match=r"checkpoint-000001' is incomplete \(no optimizer.bin\)"):
        run_rl(_config(tiny_lm, tmp_path, steps=2), progress=False)


# --- end to end on the real tasks ---------------------------------------------------------------

def test_grpo_on_gp_l_with_evaluation_kl_and_compute(tiny_lm, tmp_path):
    result = run_rl(_config(tiny_lm, tmp_path, steps=2, eval_steps=2, eval_episodes=2, save_steps=1,
                            save_total_limit=1, kl_coef=0.05, epochs=2, clip_high=0.28, report_to=["tensorboard"]),
                    progress=False)
    train = _train_entries(result)
    evals = [e for e in result.log if e["kind"] == "eval"]
    assert [e["step"] for e in train] == [1, 2] and [e["step"] for e in evals] == [0, 2]
    assert set(evals[0]) >= {"eval/gp-l/success_rate", "eval/gp-l/rule-ood/success_rate", "flops"}
    assert (tmp_path / "eval" / "step-000002" / "results.json").is_file()
    # Compute: trained tokens at 6N, rollout and scoring tokens at 2N, growing step by step.
    parameters = json.loads((result.final_model / "compute.json").read_text())["parameters"]
    for entry in train:
        assert entry["flops_train"] == 6 * parameters * entry["tokens_trained"]
        assert entry["flops"] == entry["flops_train"] + entry["flops_inference"]
        assert entry["flops_inference"] > 2 * parameters * entry["tokens_rollout"]  # plus the scoring passes
        assert math.isfinite(entry["kl"]) and entry["kl"] >= 0
    assert 0 < train[0]["flops"] < evals[1]["flops"] == train[1]["flops"]
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-000002"]
    assert any((tmp_path / "tensorboard").iterdir())
    AutoModelForCausalLM.from_pretrained(result.final_model)


def test_dynamic_sampling_drops_groups_without_reward_variance(tiny_lm, tmp_path):
    """The untrained model's GP-L answers all earn the same penalty, so every group is dropped."""
    result = run_rl(_config(tiny_lm, tmp_path, steps=1, dynamic_sampling=True, sampling_rounds=2,
                            rewards="outcome"), progress=False)
    (entry,) = _train_entries(result)
    assert entry["groups_kept"] == 0 and entry["groups_dropped"] == 4 and entry["sampling_rounds"] == 2
    assert entry["samples"] == 0


def test_a_fixed_pool_of_training_episodes_is_replayed(tiny_lm, tmp_path):
    """Three sampling rounds over a pool of two episodes play those two again; without a pool they would
    draw six, and the study's leakage check reads what was drawn."""
    settings = {"steps": 1, "dynamic_sampling": True, "sampling_rounds": 3, "rewards": "outcome"}
    pooled = run_rl(_config(tiny_lm, tmp_path / "pool", train_episodes=2, **settings), progress=False)
    endless = run_rl(_config(tiny_lm, tmp_path / "endless", **settings), progress=False)
    assert [e["sampling_rounds"] for e in _train_entries(pooled)] == [3]
    assert pooled.episodes_drawn == 2 and endless.episodes_drawn == 6
    with pytest.raises(ConfigError, match="train_episodes"):
        _config(tiny_lm, tmp_path / "small", train_episodes=1).validate()


@pytest.mark.parametrize("extra", [{"algorithm": "ppo", "lora": True, "lora_r": 4, "value_hidden": [16]},
                                   {"advantage": "rloo", "loss_aggregation": "seq-mean-token-sum-norm",
                                    "lora": True, "lora_r": 4, "kl_coef": 0.1}])
def test_virl_l_runs_end_to_end(tiny_lm, tmp_path, extra):
    result = run_rl(_config(tiny_lm, tmp_path, task="virl-l", steps=1, max_new_tokens=8, **extra), progress=False)
    (entry,) = _train_entries(result)
    assert entry["samples"] >= entry["episodes"] == 4 and entry["turns_per_episode"] >= 1
    assert math.isfinite(entry["loss"])
    model = AutoModelForCausalLM.from_pretrained(result.final_model)  # LoRA merged into a plain model
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_cli_runs_a_config_file_and_rejects_bad_ones(tiny_lm, tmp_path, capsys):
    config = tmp_path / "rl.yaml"
    config.write_text(f"model: {tiny_lm}\ntask: gp-l\nsteps: 1\nprompts_per_step: 2\ngroup_size: 2\n"
                      "max_new_tokens: 8\neval_steps: 0\nreport_to: [none]\n")
    assert main(["rl", "--config", str(config), "--output-dir", str(tmp_path / "run")]) == 0
    assert "trained 1 RL steps" in capsys.readouterr().out
    assert main(["rl", "--config", str(config), "--group-size", "1"]) == 2
    assert "group_size >= 2" in capsys.readouterr().err
    assert main(["rl", "--config", str(config), "--task", "gp-x"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'gp-x'" in err and len(err.strip().splitlines()) == 1
    assert main(["rl", "--config", str(config), "--env", "{no_such_option: 1}", "--output-dir",
                 str(tmp_path / "bad")]) == 2
    assert "unknown environment option 'no_such_option'" in capsys.readouterr().err
    assert main(["rl", "--config", str(config), "--env", "{face_cards_as_ten: false}", "--output-dir",
                 str(tmp_path / "bad")]) == 2
    assert "'face_cards_as_ten' is set by task 'gp-l'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["rl-grpo-gp-l.yaml", "rl-ppo-paper-gp-l.yaml"])
def test_example_configs_are_valid(name):
    from pathlib import Path

    config = load_config(RLConfig, Path(__file__).parent.parent / "configs" / name)
    assert config.task == "gp-l" and config.algorithm in name


def test_gp_vl_runs_end_to_end_with_a_vision_language_model(tmp_path_factory, tmp_path):
    vlm = str(build_base_model(tmp_path_factory.mktemp("vlm") / "model", kind="vlm", size="tiny", seed=0))
    result = run_rl(_config(vlm, tmp_path, task="gp-vl", steps=1, max_new_tokens=8, env={"resolution": 64},
                            algorithm="ppo", value_hidden=[16], kl_coef=0.1), progress=False)
    (entry,) = _train_entries(result)
    assert entry["samples"] >= 4 and math.isfinite(entry["loss"]) and math.isfinite(entry["kl"])
    assert entry["tokens_rollout"] > entry["samples"] * 16 and entry["flops_inference"] > 0


def test_shared_prompts_give_the_same_logprobs_values_and_gradients(tiny_lm):
    """Rows repeating a prompt run it once; results and gradients equal running every row in full."""
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    samples = [_sample([1, 40, 41, 42, 43], [50, 51]), _sample([1, 40, 41, 42, 43], [52, 53, 54, 55]),
               _sample([1, 60], [70]), _sample([1, 60], [71, 72, 73]), _sample([1, 9, 9], [5, 6])]
    results = []
    for share in (False, True):
        model.zero_grad()
        head.zero_grad()
        batch = collate(samples, pad_id=0, share_prompts=share)
        assert (batch.shared is not None) == share and batch.tokens == sum(s.length for s in samples)
        logp, state, entropy = response_logprobs(model, batch, temperature=0.7, hidden=True)
        ((logp * batch.mask).sum() + head(state).sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((logp * batch.mask, state, entropy, grads))
    (logp_a, state_a, entropy_a, grads_a), (logp_b, state_b, entropy_b, grads_b) = results
    torch.testing.assert_close(logp_b, logp_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state_b, state_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy_b, entropy_a, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_generation_reads_a_repeated_prompt_once_with_the_same_answers(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    requests = [Request("gp-l", [{"role": "user", "content": text}]) for text in ("Cards: 4, 7, K, 2", "Go")]
    policy = HFPolicy(model, tokenizer, max_new_tokens=10, temperature=1.0, seed=5)
    batch = [requests[0], requests[1], requests[0], requests[0]]
    texts = ["a b", "c", "a b"]
    assert policy._prompt_cache(policy._text_inputs(texts)[0], texts, 0) is not None
    together = policy.generate(batch)
    calls = []
    original = policy._prompt_cache
    policy._prompt_cache = lambda inputs, texts, prefix: calls.append(texts) or None  # generation reads all
    policy.reseed(5)
    alone = policy.generate(batch)
    assert calls and [r.token_ids for r in together] == [r.token_ids for r in alone]
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4, rtol=1e-4)
    policy._prompt_cache = original
