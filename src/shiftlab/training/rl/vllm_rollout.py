"""RL rollouts through a vLLM engine colocated with the trainer (`rollout_engine: vllm`, CUDA only).

Each process starts its own engine on its own GPU (vLLM's `external_launcher` backend, so the engine
joins the processes `accelerate launch` started instead of spawning workers). Before every step the
policy's current weights are copied into the engine (`load_weights`, the path TRL's colocated mode
uses) and its prefix cache is dropped, so rollouts always come from the model being trained.

Sampling is seeded per request (the policy's seed, the prompt, and how often it came in this step),
so a request's answer does not depend on what else is in the batch. The answers carry the token ids
and log-probabilities RL needs, like HFPolicy's. Text models only, without LoRA.

UNTESTED on a GPU: written against vLLM's documented `LLM` API and TRL 1.16's colocated weight sync; the
CPU tests cover only the errors a machine without CUDA or vLLM gives.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from typing import Any

from shiftlab.policies.base import Request, Response
from shiftlab.training.config import ConfigError

INSTALL_HINT = "rollout_engine: vllm needs a CUDA GPU and `pip install shiftlab[vllm]`"


def check_available() -> None:
    """A ConfigError naming what is missing, before any model is loaded."""
    import torch

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"{INSTALL_HINT} (vllm is not installed)")
    if not torch.cuda.is_available():
        raise ConfigError(f"{INSTALL_HINT} (no CUDA device here)")


class VLLMRollout:
    """The policy RL rolls out with, backed by a vLLM engine that `sync` keeps at the trained weights."""

    def __init__(self, config: Any, model: Any, processor: Any, accelerator: Any):
        from vllm import LLM

        from shiftlab.models.loading import is_vision_language

        if is_vision_language(model.config):
            raise ConfigError("rollout_engine: vllm takes text models only; use rollout_engine: hf for "
                              f"{config.model!r}")
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = f"vllm:{config.model}"
        self.max_new_tokens, self.temperature, self.top_p = config.max_new_tokens, config.temperature, config.top_p
        self.reseed(config.seed)
        # external_launcher reads the process group's layout from the environment torchrun sets.
        os.environ.setdefault("RANK", str(accelerator.process_index))
        os.environ.setdefault("LOCAL_RANK", str(accelerator.local_process_index))
        os.environ.setdefault("WORLD_SIZE", str(accelerator.num_processes))
        self.llm = LLM(model=config.model, tensor_parallel_size=1, distributed_executor_backend="external_launcher",
                       gpu_memory_utilization=config.vllm_gpu_memory_utilization, seed=config.seed,
                       dtype="bfloat16" if config.precision in ("auto", "bf16") else "float16"
                       if config.precision == "fp16" else "float32",
                       # log-probabilities after temperature/top-p: those of the distribution sampled from
                       logprobs_mode="processed_logprobs")
        accelerator.wait_for_everyone()

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)
        self._seen: dict[bytes, int] = {}

    def sync(self, model: Any) -> None:
        """Copy `model`'s weights into the engine; its cached prefixes were computed with the old ones."""
        engine_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, parameter in model.state_dict().items():
            engine_model.load_weights([(name, parameter.detach())])
        self.llm.reset_prefix_cache()

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        from vllm import SamplingParams

        prompts, params = [], []
        for request in requests:
            text = self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            prompts.append({"prompt_token_ids": ids})
            params.append(SamplingParams(temperature=self.temperature, top_p=self.top_p,
                                         max_tokens=self.max_new_tokens, logprobs=0, seed=self._request_seed(text)))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        responses = []
        for prompt, output in zip(prompts, outputs, strict=True):
            completion = output.outputs[0]
            ids = tuple(completion.token_ids)
            logprobs = tuple(float(step[token].logprob) for step, token in zip(completion.logprobs or [], ids,
                                                                               strict=True))
            responses.append(Response(self.tokenizer.decode(ids, skip_special_tokens=True), ids, logprobs,
                                      tuple(prompt["prompt_token_ids"])))
        return responses

    def _request_seed(self, text: str) -> int:
        key = hashlib.sha256(text.encode()).digest()
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        digest = hashlib.sha256(b"%d:%d:" % (self.seed, seen) + key).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)
