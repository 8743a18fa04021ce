"""Policies: what answers the prompts. `make_policy` turns a command-line spec into one."""

from __future__ import annotations

from shiftlab.policies.base import Policy, Request, Response
from shiftlab.policies.oracle import ExpertPolicy, RandomPolicy

POLICY_SPECS = ("expert", "random[:SEED]", "openai:MODEL[@BASE_URL]", "hf:PATH")


def make_policy(spec: str) -> Policy:
    """A policy from its command-line spec; raises ValueError naming the accepted forms.

    'openai:MODEL' talks to the OpenAI API; 'openai:MODEL@http://host:port/v1' to any compatible
    server, such as `vllm serve`. 'hf:PATH' loads a local Hugging Face model directory (or hub id).
    """
    kind, _, arg = spec.partition(":")
    if kind == "openai" and arg:
        from shiftlab.policies.api import OpenAIPolicy

        model, _, base_url = arg.partition("@")
        if model:
            return OpenAIPolicy(model, base_url or None)
    if kind == "expert" and not arg:
        return ExpertPolicy()
    if kind == "random":
        try:
            return RandomPolicy(int(arg) if arg else 0)
        except ValueError:
            pass
    if kind == "hf" and arg:
        try:  # imported here so `import shiftlab` does not pull in torch and transformers
            from shiftlab.policies.hf import HFPolicy
        except ImportError as error:
            raise ValueError(f"hf policies need torch and transformers ({error.name} is missing): "
                             "pip install 'shiftlab[hf]'") from None
        return HFPolicy(arg)
    raise ValueError(f"unknown policy {spec!r}; use one of: {', '.join(POLICY_SPECS)}")


__all__ = ["POLICY_SPECS", "ExpertPolicy", "Policy", "RandomPolicy", "Request", "Response", "make_policy"]
