"""What the SFT and RL trainers share around their own loops: the model they start from, the precision
they train in, LoRA, a frozen vision tower, and the final model they leave behind.

Weights load in fp32 and mixed precision casts on the fly, so a run's numbers do not depend on the dtype
a checkpoint was saved in. A mistake in what the user gave (a model that does not load, LoRA targets that
match nothing, fp16 without a GPU) is one ConfigError line. The final model reloads through the Auto
classes like any other checkpoint, with LoRA adapters merged in, so later stages need not know how it
was trained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peft
import torch

from shiftlab.models.loading import load_pretrained
from shiftlab.training.config import ConfigError

try:
    from peft import NoMatchingPeftModuleError
except ImportError:  # older peft raises a plain ValueError, recognised by its message
    NoMatchingPeftModuleError = None

_NO_MATCH_MESSAGES = ("not found in the base model", "No modules were targeted")
# Parameter names of the vision towers of the VLM families the Auto classes load (LLaVA, Qwen-VL, ...).
_VISION_NAMES = ("vision_tower", "visual")


def load_model(source: str) -> tuple[Any, Any]:
    """The model and its processor (or tokenizer) from a directory or hub id, in fp32."""
    try:
        return load_pretrained(source, dtype=torch.float32)
    except ValueError as error:
        raise ConfigError(str(error).splitlines()[0]) from None


def resolve_precision(precision: str) -> str:
    """A run's `precision` setting as fp32, bf16 or fp16: auto is bf16 on a GPU that has it, else fp32."""
    use_cuda = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if use_cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not use_cuda:
        raise ConfigError("precision: fp16 needs a CUDA GPU; use fp32 or bf16 on a CPU")
    return precision


def lora_config(config: Any) -> peft.LoraConfig | None:
    """The adapters a config with `lora`, `lora_r`, `lora_alpha`, `lora_dropout` and `lora_targets`
    asks for; None without `lora`. `["all-linear"]` is peft's own keyword, not a module name."""
    if not config.lora:
        return None
    targets = config.lora_targets[0] if config.lora_targets == ["all-linear"] else config.lora_targets
    return peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=targets, task_type="CAUSAL_LM")


def add_lora(model: Any, config: Any) -> peft.PeftModel:
    """`model` with the config's LoRA adapters; only they are trainable."""
    with lora_targets_checked(config):
        return peft.get_peft_model(model, lora_config(config))


@contextlib.contextmanager
def lora_targets_checked(config: Any) -> Iterator[None]:
    """Around whatever adds the adapters: targets that match no module of the model are a setting to
    fix, reported as such, not a peft traceback."""
    try:
        yield
    except ValueError as error:
        if not _matches_no_module(error):
            raise
        raise ConfigError(f"config key 'lora_targets': {config.lora_targets} names no module of "
                          f"{config.model!r}") from None


def _matches_no_module(error: ValueError) -> bool:
    if NoMatchingPeftModuleError is not None:
        return isinstance(error, NoMatchingPeftModuleError)
    return not isinstance(error, ConfigError) and any(m in str(error) for m in _NO_MATCH_MESSAGES)


def freeze_vision(model: Any) -> None:
    """Keep a VLM's vision tower as it is; the projector and the language model still train."""
    for name, parameter in model.named_parameters():
        if any(part in name for part in _VISION_NAMES):
            parameter.requires_grad_(False)


def save_final(model: Any, processor: Any, directory: str | Path) -> Path:
    """The trained model as a plain checkpoint at `directory`; a LoRA model has its adapters merged in
    first (which unloads them from `model`)."""
    if isinstance(model, peft.PeftModel):
        model = model.merge_and_unload()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return Path(directory)
