"""The assistant's tokens of a conversation under a chat template without generation markers, as most
downloaded checkpoints have: found by rendering, so SFT's assistant-only loss works on any template."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")

from transformers import AutoTokenizer  # noqa: E402

from shiftlab.models.builders import build_causal_lm  # noqa: E402
from shiftlab.training.assistant_masks import template_marks_assistant, tokenize_with_masks  # noqa: E402
from shiftlab.training.config import ConfigError  # noqa: E402

# ChatML as SmolLM2 writes it: a default system prompt, `<|im_end|>` ending every turn, a newline after.
CHATML = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.'"
          " ~ eos_token ~ '\\n' }}{% endif %}{{ '<|im_start|>' ~ m['role'] ~ '\\n' ~ m['content'] ~ eos_token ~ '\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# A template that drops earlier answers once the conversation goes on (as reasoning models drop thoughts).
FORGETFUL = ("{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}{{ m['role'] ~ ': ' ~ m['content']"
             " ~ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
MESSAGES = [{"role": "user", "content": "cards 3 8 3"}, {"role": "assistant", "content": "(8-3)*3+9"},
            {"role": "user", "content": "wrong, try again"}, {"role": "assistant", "content": "3*8*(3/3)"}]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(build_causal_lm(tmp_path_factory.mktemp("tiny")))


def _masked_text(tokenizer, out):
    pieces, current = [], []
    for token, keep in zip(out["input_ids"], out["assistant_masks"], strict=True):
        if keep:
            current.append(token)
        elif current:
            pieces.append(tokenizer.decode(current))
            current = []
    return pieces + ([tokenizer.decode(current)] if current else [])


def test_every_answer_and_its_end_of_turn_and_nothing_else(tokenizer):
    tokenizer.chat_template = CHATML
    assert not template_marks_assistant(tokenizer)
    out = tokenize_with_masks({"messages": MESSAGES}, tokenizer)
    eos = tokenizer.eos_token
    assert _masked_text(tokenizer, out) == [f"(8-3)*3+9{eos}", f"3*8*(3/3){eos}"]
    full = tokenizer.apply_chat_template(MESSAGES, tokenize=False)
    assert tokenizer.decode(out["input_ids"]) == full  # the whole conversation, its system prompt included


def test_shiftlabs_own_template_is_left_to_trl(tmp_path):
    assert template_marks_assistant(AutoTokenizer.from_pretrained(build_causal_lm(tmp_path)))


def test_a_template_that_rewrites_earlier_turns_is_one_clear_error(tokenizer):
    tokenizer.chat_template = FORGETFUL
    with pytest.raises(ConfigError, match="loss: completion"):
        tokenize_with_masks({"messages": MESSAGES}, tokenizer)


def test_sft_trains_a_model_whose_template_has_no_markers(tmp_path):
    from shiftlab.training.config import load_config
    from shiftlab.training.sft import SFTRunConfig, run_sft

    model = build_causal_lm(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(model)
    config = load_config(SFTRunConfig, overrides={
        "model": str(model), "tasks": ["gp-l"], "episodes": 8, "revisions": 1, "output_dir": str(tmp_path / "run"),
        "max_steps": 2, "batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "report_to": ["none"]})
    result = run_sft(config)
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert result.steps == 2 and len(losses) == 2 and all(0 < loss < 100 for loss in losses)
