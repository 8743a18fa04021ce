"""Attention for generating with a bf16 model on a CPU.

On the CPUs measured here, bf16 matmuls run 1.6-2.7x faster than fp32 ones, but PyTorch's fused CPU
attention kernel runs about 8x slower in bf16 than in fp32 when it decodes one token against a long
cache, and casting the cache to fp32 at every step costs as much again (BENCHMARKS.md, "A real
checkpoint"). A decoding step is small: each query attends with two matmuls and a softmax (in fp32)
over its group's keys, which is 8x faster than the fused kernel. Everything else (prompts, any
variant the fused path handles, such as soft-capping or sinks) goes to transformers' SDPA attention.
The function is registered under one name with SDPA's mask, so any model that takes
`attn_implementation="sdpa"` takes it.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

NAME = "shiftlab_cpu_decode"
_FUSED_ONLY = ("softcap", "sliding_window", "s_aux", "sinks", "position_bias")


def decode_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Inputs as transformers passes them ([batch, heads, length, dim]; a boolean mask that is True
    where a query may attend, or None); returns [batch, length, heads, dim] as SDPA attention does."""
    batch, heads, length, dim = query.shape
    groups = key.shape[1]
    fused = (length != 1 or dropout or heads % groups or any(kwargs.get(k) is not None for k in _FUSED_ONLY)
             or (attention_mask is not None and attention_mask.dtype != torch.bool))
    if fused:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else dim**-0.5
    grouped = query.reshape(batch, groups, heads // groups, dim)  # one query per head: its group's rows
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale  # [batch, groups, per group, keys]
    if attention_mask is not None:
        allowed = attention_mask[:, :, -1:, : key.shape[2]].reshape(batch, 1, 1, -1)
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(weights, value).reshape(batch, heads, 1, dim)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, decode_attention)
AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def fast_cpu_decoding(model: Any) -> bool:
    """Switch a bf16 model on a CPU that attends with SDPA to `decode_attention`; True if switched."""
    config = getattr(model, "config", None)
    if (model.device.type != "cpu" or model.dtype != torch.bfloat16 or config is None
            or getattr(config, "_attn_implementation", None) != "sdpa"):
        return False
    model.set_attn_implementation(NAME)
    return True
