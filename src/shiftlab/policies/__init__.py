"""Policies: what answers the prompts. `make_policy` turns a command-line spec into one."""

from __future__ import annotations

from shiftlab.policies.base import Policy, Request, Response
from shiftlab.policies.oracle import ExpertPolicy, RandomPolicy

POLICY_SPECS = ("expert", "random[:SEED]")


def make_policy(spec: str) -> Policy:
    """'expert' or 'random[:SEED]'; raises ValueError naming the accepted forms."""
    kind, _, arg = spec.partition(":")
    if kind == "expert" and not arg:
        return ExpertPolicy()
    if kind == "random":
        try:
            return RandomPolicy(int(arg) if arg else 0)
        except ValueError:
            pass
    raise ValueError(f"unknown policy {spec!r}; use one of: {', '.join(POLICY_SPECS)}")


__all__ = ["ExpertPolicy", "Policy", "RandomPolicy", "Request", "Response", "make_policy"]
