"""HFPolicy on tiny random models built offline: the generation plumbing (chat template, left padding,
token ids, log-probs, seeding, loading) is what is under test, not the answers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shiftlab.models.builders import build_causal_lm, build_vlm  # noqa: E402
from shiftlab.policies import make_policy  # noqa: E402
from shiftlab.policies.base import Request  # noqa: E402
from shiftlab.policies.hf import HFPolicy  # noqa: E402


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return str(build_causal_lm(tmp_path_factory.mktemp("tiny-llama")))


def _requests(*texts):
    return [Request("t", [{"role": "user", "content": text}]) for text in texts]


def _image_request(image, text):
    return Request(
        "t",
        [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}],
    )


PROMPTS = ("hi", "a much longer prompt, so the batch needs left padding", "mid-size prompt")


def test_batched_matches_unbatched_greedy(text_model):
    batched = HFPolicy(text_model, max_new_tokens=12, batch_size=8).generate(_requests(*PROMPTS))
    single = HFPolicy(text_model, max_new_tokens=12, batch_size=1)
    for prompt, got in zip(PROMPTS, batched, strict=True):
        (want,) = single.generate(_requests(prompt))
        assert got.token_ids == want.token_ids
        assert got.text == want.text
        np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)


def test_token_ids_and_logprobs(text_model):
    policy = HFPolicy(text_model, max_new_tokens=10)
    assert policy.name == f"hf:{text_model}"
    tok = policy.tokenizer
    for response in policy.generate(_requests(*PROMPTS)):
        assert 0 < len(response.token_ids) <= 10
        assert len(response.logprobs) == len(response.token_ids)
        assert all(lp <= 0 for lp in response.logprobs)
        assert tok.pad_token_id not in response.token_ids
        assert tok.eos_token_id not in response.token_ids[:-1]  # at most the final token
        assert response.text == tok.decode(response.token_ids, skip_special_tokens=True)


def test_sampling_is_seeded(text_model):
    def run(seed):
        policy = HFPolicy(text_model, max_new_tokens=16, temperature=1.5, top_p=0.95, seed=seed)
        return [r.token_ids for r in policy.generate(_requests(*PROMPTS))]

    first = run(1)
    assert run(1) == first
    assert run(2) != first  # a random 260-token model is near uniform: 16 draws can't all agree
    greedy = HFPolicy(text_model, max_new_tokens=16).generate(_requests(*PROMPTS))
    assert [r.token_ids for r in greedy] != first


def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ValueError, match="no-such-model"):
        HFPolicy(missing)
    with pytest.raises(ValueError, match="no-such-model"):
        make_policy(f"hf:{missing}")


def test_make_policy_hf(text_model):
    policy = make_policy(f"hf:{text_model}")
    assert isinstance(policy, HFPolicy)
    assert policy.name == f"hf:{text_model}"
    assert len(policy.generate(_requests("hello"))) == 1


def test_text_model_rejects_images(text_model):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    request = _image_request(image, "x")
    with pytest.raises(ValueError, match="text-only"):
        HFPolicy(text_model, max_new_tokens=2).generate([request])


@pytest.fixture(scope="module")
def vlm_model(tmp_path_factory):
    return str(build_vlm(tmp_path_factory.mktemp("tiny-llava")))


def test_vlm_batched_generation_with_images(vlm_model):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(20, 20), (24, 16)]]
    texts = ["what is this?", "a longer question about the picture"]
    requests = [_image_request(img, text) for img, text in zip(images, texts, strict=True)]
    policy = HFPolicy(vlm_model, max_new_tokens=6, batch_size=2)
    assert policy.is_vlm
    batched = policy.generate(requests)
    single = HFPolicy(vlm_model, max_new_tokens=6, batch_size=1).generate(requests)
    assert [r.token_ids for r in batched] == [r.token_ids for r in single]
    for response in batched:
        assert 0 < len(response.token_ids) == len(response.logprobs) <= 6
        assert all(lp <= 0 for lp in response.logprobs)
    # Different images must change the model's view: swap them under the same text.
    swapped = [_image_request(img, text) for img, text in zip(images[::-1], texts, strict=True)]
    assert [r.logprobs for r in policy.generate(swapped)] != [r.logprobs for r in batched]


def test_stops_at_eos_and_drops_padding(text_model):
    """The tiny model rarely emits </s> by chance, so make a token it does emit an end token."""
    tok = transformers.AutoTokenizer.from_pretrained(text_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(text_model)
    free = HFPolicy(model, tok, max_new_tokens=12).generate(_requests(*PROMPTS))
    stop = free[0].token_ids[3]
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    policy = HFPolicy(model, tok, max_new_tokens=12)
    for before, after in zip(free, policy.generate(_requests(*PROMPTS)), strict=True):
        cut = before.token_ids.index(stop) + 1 if stop in before.token_ids else len(before.token_ids)
        assert after.token_ids == before.token_ids[:cut]
        np.testing.assert_allclose(after.logprobs, before.logprobs[:cut], atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 2.0])
def test_logprobs_match_a_forward_pass(text_model, temperature):
    """The returned log-probs are those of the distribution each token was drawn from: the model's
    softmax at `temperature`, with no hidden top-k from generation defaults."""
    policy = HFPolicy(text_model, max_new_tokens=8, temperature=temperature, seed=3)
    (response,) = policy.generate(_requests("score me"))
    prompt = policy.tokenizer.apply_chat_template(
        [{"role": "user", "content": "score me"}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = policy.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + list(response.token_ids)])
    with torch.no_grad():
        logits = policy.model(ids).logits[0, len(prompt_ids) - 1 : -1]
    logits = logits / temperature if temperature else logits
    want = torch.log_softmax(logits.float(), -1).gather(1, ids[0, len(prompt_ids) :, None])[:, 0]
    np.testing.assert_allclose(response.logprobs, want.numpy(), atol=1e-4)


def test_eval_with_a_missing_model_path_is_one_clear_line(tmp_path, capsys):
    from shiftlab.cli import main

    missing = tmp_path / "no-such-model"
    assert main(["eval", "--policy", f"hf:{missing}", "--tasks", "gp-l", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1


def test_responses_carry_the_prompt_as_generation_read_it(text_model, vlm_model):
    """A trainer scores answers under `prompt_ids` and `prompt_extras`: the same as each prompt alone,
    without the batch's padding, and each request with its own images only."""
    policy = HFPolicy(text_model, max_new_tokens=4, batch_size=8)
    messages = [r.messages for r in _requests(*PROMPTS)]
    for response, message in zip(policy.generate(_requests(*PROMPTS)), messages, strict=True):
        assert response.prompt_ids == tuple(policy.prompt_inputs(message)["input_ids"][0].tolist())
        assert response.prompt_extras == {}

    rng = np.random.default_rng(1)
    image = lambda: rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)  # noqa: E731
    two = {"role": "user", "content": [{"type": "image", "image": image()}, {"type": "text", "text": "and"},
                                       {"type": "image", "image": image()}]}
    requests = [_image_request(image(), "one picture"), Request("t", [two]), _image_request(image(), "x")]
    policy = HFPolicy(vlm_model, max_new_tokens=4, batch_size=3)
    for response, request in zip(policy.generate(requests), requests, strict=True):
        alone = policy.prompt_inputs(request.messages)
        assert response.prompt_ids == tuple(alone["input_ids"][0].tolist())
        assert response.prompt_extras.keys() == {"pixel_values"}
        assert torch.equal(response.prompt_extras["pixel_values"], alone["pixel_values"])
        assert response.prompt_extras["pixel_values"].device.type == "cpu"


def test_batched_image_inputs_split_by_request():
    from shiftlab.policies.hf import per_request_inputs

    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    grid = torch.tensor([[1, 2, 2], [1, 2, 4], [1, 2, 2]])  # Qwen-VL: 4, 8 and 4 patches
    inputs = {"input_ids": torch.zeros(4, 4), "attention_mask": mask, "pixel_values": torch.arange(16.0)[:, None],
              "image_grid_thw": grid, "mm_token_type_ids": torch.arange(16).view(4, 4), "per_row": torch.arange(4)}
    parts = per_request_inputs(inputs, [2, 0, 1, 0])
    assert parts[1] == parts[3] == {}
    assert parts[0]["pixel_values"].flatten().tolist() == list(range(12))
    assert parts[2]["pixel_values"].flatten().tolist() == [12, 13, 14, 15]
    assert parts[0]["image_grid_thw"].tolist() == grid[:2].tolist() and parts[2]["image_grid_thw"].tolist() == [[1, 2, 2]]
    assert parts[0]["mm_token_type_ids"].tolist() == [[1, 2, 3]] and parts[2]["mm_token_type_ids"].tolist() == [[10, 11]]
    assert parts[0]["per_row"].tolist() == [0] and parts[2]["per_row"].tolist() == [2]


def test_the_prompt_stays_out_of_trajectory_records(text_model):
    from shiftlab.rollout import run_episodes
    from shiftlab.task import get_preset

    (trajectory,) = run_episodes(get_preset("gp-l"), HFPolicy(text_model, max_new_tokens=4), [0])
    assert all(turn.prompt_ids for turn in trajectory.turns)
    assert all("prompt_ids" not in turn and "prompt_extras" not in turn for turn in trajectory.to_json()["turns"])


# A long instruction shared by every prompt, as the tasks' prompts share their rules: long enough that
# the policy computes it once and lays each row out as [shared prefix | padding | own suffix].
SHARED = "Rules of the game, the same for every episode: " + "answer with a formula, " * 6


def test_a_shared_prefix_is_computed_once_and_changes_no_answer(text_model):
    policy = HFPolicy(text_model, max_new_tokens=10, batch_size=8)
    prompts = [SHARED + tail for tail in ("hand 1", "a longer hand: 2 3 4", "hand 5", "hand 1")]
    texts = [policy._chat_template([{"role": "user", "content": p}]) for p in prompts]
    inputs, prefix = policy._text_inputs(texts)
    assert prefix >= 16 and (inputs["attention_mask"][:, :prefix] == 1).all()
    assert (inputs["attention_mask"] == 0).any()  # the padding sits between prefix and suffix
    batched = policy.generate(_requests(*prompts))
    single = HFPolicy(text_model, max_new_tokens=10, batch_size=1)
    for prompt, got in zip(prompts, batched, strict=True):
        (want,) = single.generate(_requests(prompt))
        assert got.token_ids == want.token_ids and got.prompt_ids == want.prompt_ids
        np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_decode_attention_matches_sdpa(dtype):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from shiftlab.models.attention import decode_attention

    generator = torch.Generator().manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    query = torch.randn(4, 6, 1, 16, generator=generator).to(dtype)
    key, value = (torch.randn(4, 2, 30, 16, generator=generator).to(dtype) for _ in range(2))
    mask = torch.ones(4, 1, 1, 30, dtype=torch.bool)
    mask[0, ..., :7] = False  # a left-padded row
    mask[1, ..., 10:14] = False  # padding between a shared prefix and the row's own part
    want, _ = sdpa_attention_forward(module, query.float(), key.float(), value.float(), mask, scaling=0.25)
    got, _ = decode_attention(module, query, key, value, mask, scaling=0.25)
    assert got.shape == want.shape and got.dtype == dtype
    torch.testing.assert_close(got.float(), want, atol=2e-2 if dtype == torch.bfloat16 else 1e-5, rtol=0)


def test_a_bf16_policy_on_cpu_decodes_with_its_own_attention(text_model):
    from shiftlab.models.attention import NAME

    policy = HFPolicy(text_model, max_new_tokens=6, dtype=torch.bfloat16, device="cpu")
    assert policy.model.config._attn_implementation == NAME
    fp32 = HFPolicy(text_model, max_new_tokens=6)
    assert fp32.model.config._attn_implementation == "sdpa"
    (response,) = policy.generate(_requests(SHARED))
    assert 0 < len(response.token_ids) <= 6 and all(lp <= 0 for lp in response.logprobs)
