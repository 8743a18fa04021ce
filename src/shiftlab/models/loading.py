"""Loading a model and its processor from a local directory or a hub id, the same way for every stage
(policies, SFT, RL), so a model shiftlab built and a downloaded checkpoint take one path."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import torch
import transformers
from packaging.version import Version
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedModel,
)

from shiftlab.errors import InputError


class ModelError(InputError):
    """A model path or id that does not give a loadable model: missing, not a model, or corrupt files."""


def load_pretrained(path: str, processor: Any = None, dtype: str | torch.dtype = "auto") -> tuple[PreTrainedModel, Any]:
    """Model and processor from a directory or a hub id. A path that looks local never reaches the
    network, so a typo fails at once with the path named instead of as a confusing hub error. Any
    failure to load (a missing or truncated weights file, a corrupt config or tokenizer) is one
    ModelError line naming the path and the fault."""
    expanded = os.path.expanduser(path)
    looks_local = (
        os.path.exists(expanded) or expanded.startswith((os.sep, ".", "~")) or os.path.isabs(expanded)
    )
    if looks_local and not os.path.isdir(expanded):
        raise ModelError(f"HF model path {path!r} does not exist or is not a directory")
    source = expanded if looks_local else path
    kwargs: dict[str, Any] = {"local_files_only": True} if looks_local else {}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds for a bad config
        raise ModelError(f"cannot load a Hugging Face model config from {path!r}: {_fault(error)}") from None
    try:
        if processor is None:
            try:
                processor = AutoProcessor.from_pretrained(source, **kwargs)
            except (OSError, ValueError, TypeError, KeyError):
                processor = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as error:  # noqa: BLE001
        raise ModelError(f"cannot load the tokenizer or processor of {path!r}: {_fault(error)}") from None
    auto = (
        AutoModelForImageTextToText
        if is_vision_language(config)
        else AutoModelForCausalLM
    )
    try:
        model = auto.from_pretrained(source, **{dtype_kwarg(): dtype}, **kwargs)
    except Exception as error:  # noqa: BLE001 - safetensors, torch and transformers each raise their own
        raise ModelError(f"cannot load the model weights from {path!r}: {_fault(error)}") from None
    return model, processor


def _fault(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:300] if lines else 'no details'}"


def dtype_kwarg() -> str:
    """transformers renamed `torch_dtype` to `dtype` in 4.56; use whichever this version takes."""
    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def is_vision_language(config: Any) -> bool:
    """A model config with a vision tower: loaded as image-text-to-text, fed images by the policies."""
    return getattr(config, "vision_config", None) is not None


@contextlib.contextmanager
def old_cache_name():
    """transformers 5.2x renames `past_key_values` to `cache` and warns at every call; the old name is
    the one every supported version takes, so its deprecation warning is silenced where it is passed."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
        yield
