"""Models built from nothing reload through the Auto classes like downloaded checkpoints, and their
tokenizers and chat template make training text and generation prompts line up token for token."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shiftlab.models.builders import (  # noqa: E402
    SIZES,
    SPECIAL_TOKENS,
    VISION_SIZES,
    VOCAB_SIZES,
    build_causal_lm,
    build_tokenizer,
    build_vlm,
    byte_tokenizer,
    init_causal_lm,
    init_vlm,
)
from shiftlab.policies.base import Request  # noqa: E402
from shiftlab.policies.hf import HFPolicy  # noqa: E402
from shiftlab.task import get_preset  # noqa: E402
from shiftlab.training.base_model import build_base_model, task_corpus  # noqa: E402

CONVERSATION = [
    {"role": "user", "content": [{"type": "text", "text": "Deal: 3, 7, K, A.", "image": None}]},
    {"role": "assistant", "content": '{"cards": [3, 7, 10, 1], "formula": "3*7+1+(10-10)"}'},
    {"role": "user", "content": "Wrong. Try again."},
    {"role": "assistant", "content": [{"type": "text", "text": "forward()", "image": None}]},
]
ANSWERS = ['{"cards": [3, 7, 10, 1], "formula": "3*7+1+(10-10)"}', "forward()"]


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer(task_corpus(), VOCAB_SIZES["tiny"])


@pytest.fixture(scope="module", params=["byte", "bpe"])
def tokenizer(request, bpe):
    return bpe if request.param == "bpe" else byte_tokenizer()


@pytest.fixture(scope="module")
def gp_vl_turn():
    preset = get_preset("gp-vl")
    env = preset.make_env()
    observation, info = env.reset(seed=0)
    env.close()
    return observation, preset.make_prompt().first_turn(observation, info)


def _auto_tokenizer(path):
    return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)


def test_bpe_is_deterministic(bpe):
    again = build_tokenizer(task_corpus(), VOCAB_SIZES["tiny"])
    assert again.backend_tokenizer.to_str() == bpe.backend_tokenizer.to_str()
    assert [bpe.convert_ids_to_tokens(i) for i in range(len(SPECIAL_TOKENS))] == list(SPECIAL_TOKENS)
    assert bpe.convert_tokens_to_ids("<image>") == byte_tokenizer().convert_tokens_to_ids("<image>")


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_tokenizers_are_lossless(bpe, text):
    for tok in (bpe, byte_tokenizer()):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_bpe_compresses_task_text(bpe):
    preset = get_preset("gp-l")
    observation, info = preset.make_env().reset(seed=1234)
    (message,) = preset.make_prompt().first_turn(observation, info)
    text = message["content"]
    assert len(bpe(text, add_special_tokens=False)["input_ids"]) < 0.4 * len(text.encode())
    assert len(byte_tokenizer()(text, add_special_tokens=False)["input_ids"]) == len(text.encode())


def test_assistant_mask_is_content_and_eos(tokenizer):
    out = tokenizer.apply_chat_template(
        CONVERSATION, return_assistant_tokens_mask=True, return_dict=True, tokenize=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    want = [t for answer in ANSWERS for t in [*tokenizer(answer, add_special_tokens=False)["input_ids"],
                                              tokenizer.eos_token_id]]
    assert [t for t, m in zip(ids, mask, strict=True) if m] == want
    assert mask[-1] == 1 and mask.count(1) == len(want)


def test_generation_prompt_is_the_training_prefix(tokenizer):
    def render(messages, **kwargs):
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)

    full = render(CONVERSATION)
    prompt = render(CONVERSATION[:-1], add_generation_prompt=True)
    assert prompt.endswith("assistant: ") and full == prompt + ANSWERS[-1] + tokenizer.eos_token
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    answer_ids = tokenizer(ANSWERS[-1], add_special_tokens=False)["input_ids"]
    assert full_ids[len(prompt_ids) :] == [*answer_ids, tokenizer.eos_token_id]


def test_template_renders_image_parts_with_none_fields():
    messages = [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "x"}]}]
    text = byte_tokenizer().apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<s>user: <image>x</s>assistant: "


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_seeded_init_leaves_global_rng_alone():
    tok = byte_tokenizer()
    before = torch.random.get_rng_state()
    first = _weights(init_causal_lm(tok, seed=0))
    assert torch.equal(torch.random.get_rng_state(), before)
    same = _weights(init_causal_lm(tok, seed=0))
    other = _weights(init_causal_lm(tok, seed=1))
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())
    vlm_a, _ = init_vlm(tok, seed=0)
    vlm_b, _ = init_vlm(tok, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(vlm_a.parameters(), vlm_b.parameters(), strict=True))


def test_lm_round_trip(bpe, tmp_path):
    path = build_causal_lm(tmp_path / "lm", seed=3, tokenizer=bpe)
    tok = _auto_tokenizer(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    text = bpe.apply_chat_template(CONVERSATION, tokenize=False)
    assert tok.apply_chat_template(CONVERSATION, tokenize=False) == text
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert ids.tolist() == bpe(text, add_special_tokens=False, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, init_causal_lm(bpe, seed=3)(ids).logits, rtol=0, atol=0)
    assert model.generation_config.eos_token_id == tok.eos_token_id


@pytest.fixture(scope="module")
def vlm_path(tmp_path_factory):
    return build_base_model(tmp_path_factory.mktemp("vlm"), kind="vlm", size="tiny", seed=0)


def test_vlm_round_trip_on_a_task_image(vlm_path, gp_vl_turn, bpe):
    observation, messages = gp_vl_turn
    processor = transformers.AutoProcessor.from_pretrained(vlm_path, local_files_only=True)
    model = transformers.AutoModelForImageTextToText.from_pretrained(vlm_path, local_files_only=True)
    parts = [{"type": p["type"], **({"text": p["text"]} if p["type"] == "text" else {})} for p in messages[0]["content"]]
    text = processor.apply_chat_template(
        [{"role": "user", "content": parts}], tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[text], images=[observation], return_tensors="pt", add_special_tokens=False)
    side = VISION_SIZES["tiny"]["image_size"]
    assert inputs["pixel_values"].shape == (1, 3, side, side)
    image_tokens = int((inputs["input_ids"] == model.config.image_token_index).sum())
    assert image_tokens == model.config.image_seq_length == (side // VISION_SIZES["tiny"]["patch_size"]) ** 2
    fresh, _ = init_vlm(bpe, seed=0)  # build_base_model's BPE is this one: same corpus, same vocabulary size
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, fresh(**inputs).logits, rtol=0, atol=0)


def test_images_are_squashed_not_cropped(vlm_path):
    processor = transformers.AutoProcessor.from_pretrained(vlm_path, local_files_only=True)
    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, :32, 0] = wide[:, 32:64, 1] = wide[:, 64:, 2] = 255  # red, green, blue thirds
    pixels = processor.image_processor(wide, return_tensors="pt")["pixel_values"][0]
    assert pixels[:, :, 0].mean(1).argmax() == 0  # the left edge is still red
    assert pixels[:, :, -1].mean(1).argmax() == 2  # and the right edge blue


def test_hf_policy_loads_and_runs_the_vlm(vlm_path, gp_vl_turn):
    _, messages = gp_vl_turn
    policy = HFPolicy(str(vlm_path), max_new_tokens=4)
    assert policy.is_vlm
    (response,) = policy.generate([Request("gp-vl", messages)])
    assert 0 < len(response.token_ids) == len(response.logprobs) <= 4


def test_byte_lm_through_build_base_model(tmp_path):
    path = build_base_model(tmp_path / "lm", kind="lm", tokenizer="byte")
    assert len(_auto_tokenizer(path)) == 4 + 256


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"kind": "seq2seq"}, "kind"), ({"size": "huge"}, "size"), ({"tokenizer": "wordpiece"}, "tokenizer")],
)
def test_bad_choices_are_named(tmp_path, kwargs, named):
    with pytest.raises(ValueError, match=named):
        build_base_model(tmp_path / "m", **kwargs)
    assert not (tmp_path / "m").exists()


def test_every_size_builds_a_model_that_answers_and_the_sizes_grow(bpe):
    assert list(SIZES) == list(VISION_SIZES) == list(VOCAB_SIZES) == ["tiny", "mini", "small"]
    counts = []
    for size in SIZES:
        model = init_causal_lm(bpe, size, seed=0)
        counts.append(sum(p.numel() for p in model.parameters()))
        assert model.config.hidden_size % model.config.num_attention_heads == 0
        ids = bpe.apply_chat_template(CONVERSATION[:1], add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=bpe.pad_token_id)
        assert ids.shape[1] < out.shape[1] <= ids.shape[1] + 3
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_bad_size_for_direct_builders(tmp_path):
    with pytest.raises(ValueError, match="size"):
        build_causal_lm(tmp_path / "lm", size="huge")
    with pytest.raises(ValueError, match="size"):
        build_vlm(tmp_path / "vlm", size="huge")
