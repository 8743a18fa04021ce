"""What SFT and RL share (`shiftlab.training.common`): the user's mistakes in model, precision and LoRA
settings are one ConfigError line in both trainers, and the FLOP formulas both count with."""

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402

from shiftlab.models.builders import build_model  # noqa: E402
from shiftlab.training import common  # noqa: E402
from shiftlab.training.compute import forward_flops, training_flops  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402
from shiftlab.training.rl.config import RLConfig  # noqa: E402
from shiftlab.training.rl.trainer import run_rl  # noqa: E402
from shiftlab.training.sft import SFTRunConfig, run_sft  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(build_model(tmp_path_factory.mktemp("lm") / "model", kind="lm", size="tiny", seed=0))


def _sft(model, out, **values):
    base = {"model": model, "tasks": ["gp-l"], "episodes": 4, "output_dir": str(out), "max_steps": 1,
            "report_to": ["none"]}
    return load_config(SFTRunConfig, overrides={**base, **values})


def _rl(model, out, **values):
    base = {"model": model, "output_dir": str(out), "steps": 1, "prompts_per_step": 1, "group_size": 2,
            "max_new_tokens": 4, "eval_steps": 0, "report_to": ["none"]}
    return load_config(RLConfig, overrides={**base, **values})


def test_lora_targets_that_match_no_module_are_named_by_both_trainers(tiny_lm, tmp_path):
    with pytest.raises(ConfigError, match=r"'lora_targets': \['no_such_layer'\] names no module"):
        run_sft(_sft(tiny_lm, tmp_path / "sft", lora=True, lora_targets=["no_such_layer"]))
    with pytest.raises(ConfigError, match=r"'lora_targets': \['no_such_layer'\] names no module"):
        run_rl(_rl(tiny_lm, tmp_path / "rl", lora=True, lora_targets=["no_such_layer"]), progress=False)


def test_without_peft_s_error_class_the_message_is_recognised(monkeypatch):
    config = _rl("m", "out", lora=True, lora_targets=["x"])
    monkeypatch.setattr(common, "NoMatchingPeftModuleError", None)
    with pytest.raises(ConfigError, match="names no module"), common.lora_targets_checked(config):
        raise ValueError("Target modules {'x'} not found in the base model. Please check the target modules.")
    with pytest.raises(ValueError, match="something else") as caught, common.lora_targets_checked(config):
        raise ValueError("something else")
    assert not isinstance(caught.value, ConfigError)


def test_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert common.resolve_precision("auto") == "fp32"
    assert common.resolve_precision("bf16") == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        common.resolve_precision("fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a GPU")
def test_fp16_on_a_cpu_is_refused_by_both_trainers(tiny_lm, tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        run_sft(_sft(tiny_lm, tmp_path / "sft", precision="fp16"))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        run_rl(_rl(tiny_lm, tmp_path / "rl", precision="fp16"), progress=False)


def test_a_model_that_does_not_load_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as caught:
        common.load_model(str(tmp_path / "missing"))
    assert len(str(caught.value).splitlines()) == 1


def test_flop_formulas():
    assert training_flops(1000, 7) == 42_000.0 == 3 * forward_flops(1000, 7)
