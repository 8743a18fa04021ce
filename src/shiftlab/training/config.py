"""Run configs: flat dataclasses read from YAML and overridden by command-line flags.

One dataclass per trainer; its fields are the YAML keys and, spelled with dashes, the flags, so
`learning_rate: 1e-5` in a file and `--learning-rate 1e-5` on the command line mean the same.
Every value is checked against the field's type before anything heavy is imported, and every
mistake is reported as one `ConfigError` line that names the key. Two rules hold for every config:
a float is finite (a NaN learning rate trains a NaN model without a word), and a key named `seed` or
`*_seed` is an int from 0 to 2**32 - 1 (what numpy, torch and transformers accept).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml

from shiftlab.errors import InputError


class ConfigError(InputError):
    """A config file or flag that cannot be used; the message is one line naming the key."""


def load_config(cls: type, path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                defaults: dict[str, Any] | None = None):
    """`cls` built from `defaults` (e.g. a named preset), a YAML file (optional) on them and `overrides` on
    top; values are type-checked and `cls.validate()` (when defined) checks the rest. A mapping given for a
    key whose default is a mapping updates it key by key, so `rl: {steps: 20}` keeps a preset's other RL
    settings."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    from_file = read_yaml(Path(path)) if path is not None else {}
    checked: dict[str, Any] = {}
    for layer in (defaults or {}, from_file, {k: v for k, v in (overrides or {}).items() if v is not None}):
        for key, value in layer.items():
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(fields)}"
                raise ConfigError(f"unknown config key {key!r}{hint}")
            value, base = _coerce(key, value, hints[key]), checked.get(key)
            checked[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    missing = [
        f.name for f in fields.values()
        if f.name not in checked and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required config key {missing[0]!r}")
    for key, value in checked.items():
        if (key == "seed" or key.endswith("_seed")) and isinstance(value, int) and not 0 <= value <= MAX_SEED:
            raise ConfigError(f"config key {key!r} must be from 0 to {MAX_SEED}, not {value}")
    config = cls(**checked)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


MAX_SEED = 2**32 - 1


def check_ranges(config: Any, ranges: dict[str, tuple[float | None, float | None]], *, above: Iterable[str] = (),
                 below: Iterable[str] = ()) -> None:
    """Raise ConfigError unless each key's value (each item, for a list) lies in its [low, high] (None: no
    bound); the keys in `above` exclude the low end, those in `below` the high end. A value of None (an
    optional setting left out) passes."""
    above, below = set(above), set(below)
    for key, (low, high) in ranges.items():
        value = getattr(config, key)
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            if low is not None and (v <= low if key in above else v < low):
                bound = f"above {low:g}" if key in above else f"at least {low:g}"
                raise ConfigError(f"config key {key!r} must be {bound}, not {v}")
            if high is not None and (v >= high if key in below else v > high):
                bound = f"below {high:g}" if key in below else f"at most {high:g}"
                raise ConfigError(f"config key {key!r} must be {bound}, not {v}")


def check_lora_ranges(config: Any) -> None:
    """The LoRA settings of every trainer config: a rank from 1, a positive alpha, a dropout below 1."""
    check_ranges(config, {"lora_r": (1, 65_536), "lora_alpha": (0, None), "lora_dropout": (0, 1)},
                 above=("lora_alpha",), below=("lora_dropout",))


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--flag` per field, defaulting to None so only the flags given override the file."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if default is not None and default != []:
            help_text += f" (default: {default})"
        kind = hints[f.name]
        if _base(kind) is bool:
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        elif _base(kind) is list:
            parser.add_argument(flag, dest=f.name, default=None, nargs="+", metavar="VALUE", help=help_text)
        elif _choices(kind):
            parser.add_argument(flag, dest=f.name, default=None, choices=_choices(kind), help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def flag_overrides(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The config values given as flags; strings are converted by `load_config` from the field type."""
    return {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if getattr(namespace, f.name, None) is not None}


def resume_point(config: Any, output: Path, last: Path | None, marker: str, keys: Iterable[str]) -> Path | None:
    """The checkpoint a run continues from, given its `resume` setting (auto, never, or a path) and the
    newest checkpoint `last` in `output`; a checkpoint directory is one holding `marker`."""
    if config.resume == "never":
        if last is not None:
            raise ConfigError(f"{str(output)!r} already has checkpoints; resume them (resume: auto) or use a new "
                              "output_dir")
        return None
    if config.resume != "auto":
        last = Path(config.resume)
    if last is not None and not (last / marker).is_file():
        raise ConfigError(f"checkpoint {str(last)!r} is incomplete or not a checkpoint (no {marker}); delete it to "
                          "resume from the one before, or use a new output_dir")
    if last is not None:
        check_same_run(config, output, keys)
    return last


def check_checkpoint_weights(path: Path) -> None:
    """Read the header of every safetensors file in a checkpoint (cheap: no tensor is loaded), so a file
    damaged since it was written is named before a run resumes from it."""
    from safetensors import safe_open

    for weights in sorted(Path(path).rglob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error type for any damage
            raise ConfigError(f"checkpoint {str(path)!r}: {weights.name} is damaged ({error}); delete the "
                              "checkpoint to resume from the one before, or use a new output_dir") from None


def output_directory(path: str | Path, key: str = "output_dir") -> Path:
    """The run's directory, created if needed; a path that is a file or cannot be made is a ConfigError."""
    if not str(path).strip():
        raise ConfigError(f"{key} is empty; give a directory")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{key} {str(path)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create {key} {str(path)!r}: {error.strerror or error}") from None
    return out


def check_same_run(config: Any, output: Path, keys: Iterable[str]) -> None:
    """A run resumed in `output` must keep the settings that shape it: refuse a change to any of `keys`
    against the `config.yaml` saved there."""
    saved_path = Path(output) / "config.yaml"
    if not saved_path.is_file():
        return
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        raise ConfigError(f"{str(saved_path)!r} is not readable YAML; cannot tell whether this is the same "
                          "run: use a new output_dir") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{str(saved_path)!r} is not a saved run config; use a new output_dir")
    current = dataclasses.asdict(config)
    for key in keys:
        if key in saved and saved[key] != current[key]:
            raise ConfigError(f"cannot resume {str(output)!r} with a different {key!r} ({saved[key]!r} before, "
                              f"{current[key]!r} now); use a new output_dir")


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


MAX_CONFIG_BYTES = 10_000_000


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; every way it can be unusable is one ConfigError."""
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} is not a regular file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is over {MAX_CONFIG_BYTES // 1_000_000} MB; a config is a few lines")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{at}") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} is nested too deeply to be a config") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error.strerror or error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values")
    return {str(k): v for k, v in data.items()}


def _base(kind: Any) -> Any:
    """The type a value must have, with `X | None` unwrapped."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return _base(args[0]) if len(args) == 1 else kind
    return typing.get_origin(kind) or kind


def _choices(kind: Any) -> tuple | None:
    inner = [a for a in typing.get_args(kind) if a is not type(None)] if typing.get_origin(kind) is not Literal else []
    literal = kind if typing.get_origin(kind) is Literal else (inner[0] if inner else None)
    return typing.get_args(literal) if literal is not None and typing.get_origin(literal) is Literal else None


def _coerce(key: str, value: Any, kind: Any) -> Any:
    optional = type(None) in typing.get_args(kind)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"config key {key!r} cannot be empty")
    base = _base(kind)
    inner = [a for a in typing.get_args(kind) if a is not type(None)]
    choices = _choices(kind)
    if choices:
        if value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value
    if base is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, not {value!r}")
        return value
    if base is int:
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} must be an integer, not {value!r}") from None
    if base is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"config key {key!r} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"config key {key!r} must be a finite number, not {value!r}")
        return number
    if base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be a string, not {value!r}")
        return str(value)
    if base is list:
        items = value if isinstance(value, list) else [value]
        listed = inner[0] if optional else kind  # list[X] | None -> list[X]
        (item_kind,) = typing.get_args(listed) or (str,)
        return [_coerce(key, item, item_kind) for item in items]
    if base is dict:
        if isinstance(value, str):  # a flag: `--env '{city: paris}'`
            with contextlib.suppress(yaml.YAMLError, RecursionError):
                value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, not {value!r}")
        return dict(value)
    return value
