"""RL rollouts through a vLLM engine colocated with the trainer (`rollout_engine: vllm`, CUDA only).

Each process starts its own engine on its own GPU (vLLM's `external_launcher` backend, so the engine
joins the processes `accelerate launch` started instead of spawning workers). Before every step the
policy's current weights are copied into the engine (`load_weights`, the path TRL's colocated mode
uses) and its prefix cache is dropped, so rollouts always come from the model being trained.

Generation is the `vllm:` policy's (`policies/vllm.py`): sampling seeded per request (the policy's
seed, the conversation, and how often it came since the last reseed), so an answer does not depend on
what else is in the batch, and the token ids and log-probabilities RL needs, like HFPolicy's. Text
models only, without LoRA.

UNTESTED on a GPU: written against vLLM's documented `LLM` API and TRL 1.16's colocated weight sync; the
CPU tests cover only the errors a machine without CUDA or vLLM gives.
"""

from __future__ import annotations

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
    """The policy RL rolls out with: the `vllm:` evaluation policy (`policies/vllm.py`: prompts, per-request
    seeds, token ids and log-probabilities) on an engine colocated with the trainer, which `sync` keeps at
    the trained weights."""

    def __init__(self, config: Any, model: Any, processor: Any, accelerator: Any):
        from vllm import LLM

        from shiftlab.models.loading import is_vision_language
        from shiftlab.policies.vllm import VLLMPolicy

        if is_vision_language(model.config):
            raise ConfigError("rollout_engine: vllm takes text models only; use rollout_engine: hf for "
                              f"{config.model!r}")
        # external_launcher reads the process group's layout from the environment torchrun sets.
        os.environ.setdefault("RANK", str(accelerator.process_index))
        os.environ.setdefault("LOCAL_RANK", str(accelerator.local_process_index))
        os.environ.setdefault("WORLD_SIZE", str(accelerator.num_processes))
        dtype = {"auto": "bfloat16", "bf16": "bfloat16", "fp16": "float16"}.get(config.precision, "float32")
        llm = LLM(model=config.model, tensor_parallel_size=1, distributed_executor_backend="external_launcher",
                  gpu_memory_utilization=config.vllm_gpu_memory_utilization, seed=config.seed,
                  dtype=dtype, logprobs_mode="processed_logprobs")
        self._policy = VLLMPolicy(config.model, max_tokens=config.max_new_tokens, temperature=config.temperature,
                                  top_p=config.top_p, seed=config.seed, llm=llm)
        self.name = self._policy.name
        self.tokenizer = getattr(processor, "tokenizer", processor)  # the trainer's: its pad id
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        accelerator.wait_for_everyone()

    def reseed(self, seed: int) -> None:
        self._policy.reseed(seed)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return self._policy.generate(requests)

    def sync(self, model: Any) -> None:
        """Copy `model`'s weights into the engine; its cached prefixes were computed with the old ones."""
        llm = self._policy.llm
        engine_model = llm.llm_engine.model_executor.driver_worker.model_runner.model
        for name, parameter in model.state_dict().items():
            engine_model.load_weights([(name, parameter.detach())])
        llm.reset_prefix_cache()
