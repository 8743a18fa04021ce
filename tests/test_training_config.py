"""Run configs: YAML plus flags, type-checked, with one clear line per mistake."""

import argparse
import dataclasses
from typing import Literal

import pytest

from shiftlab.training.config import ConfigError, add_config_flags, flag_overrides, load_config, to_yaml
from shiftlab.training.sft import SFTRunConfig


@dataclasses.dataclass
class Example:
    name: str
    steps: int = 10
    rate: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    items: list[str] = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)


def test_defaults_then_yaml_then_overrides_and_mappings_update_key_by_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\nextra: {b: 3}\n")
    preset = {"name": "preset", "steps": 5, "rate": 0.1, "extra": {"a": 1, "b": 2}}
    config = load_config(Example, path, {"extra": {"c": 4}, "rate": None}, defaults=preset)
    assert config == Example(name="preset", steps=20, rate=0.1, extra={"a": 1, "b": 3, "c": 4})
    assert preset["extra"] == {"a": 1, "b": 2}  # the defaults are not changed in place


def test_yaml_then_overrides_with_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\nsteps: 20\nrate: 1e-3\nflag: true\nitems: [x, y]\n")
    config = load_config(Example, path, {"steps": "30", "mode": "b", "limit": "none"})
    assert config == Example(name="run", steps=30, rate=1e-3, flag=True, mode="b", limit=None, items=["x", "y"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "x", "stepz": 1}, "unknown config key 'stepz'; did you mean 'steps'"),
        ({"name": "x", "steps": 1.5}, "'steps' must be an integer"),
        ({"name": "x", "steps": True}, "'steps' must be an integer"),
        ({"name": "x", "rate": "fast"}, "'rate' must be a number"),
        ({"name": "x", "flag": "maybe"}, "'flag' must be true or false"),
        ({"name": "x", "mode": "c"}, "'mode' must be one of 'a', 'b'"),
        ({"steps": 3}, "missing required config key 'name'"),
        ({"name": ["a"]}, "'name' must be a string"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(Example, None, values)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Example, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(Example, bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Example, listing)


def test_flags_mirror_fields_and_only_given_flags_override(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Example)
    args = parser.parse_args(["--name", "n", "--steps", "7", "--flag", "--items", "p", "q", "--mode", "b"])
    overrides = flag_overrides(args, Example)
    assert overrides == {"name": "n", "steps": "7", "flag": True, "items": ["p", "q"], "mode": "b"}
    path = tmp_path / "c.yaml"
    path.write_text("name: file\nrate: 0.25\n")
    config = load_config(Example, path, overrides)
    assert (config.name, config.steps, config.rate, config.flag) == ("n", 7, 0.25, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "z"])


def test_sft_config_checks_and_round_trips(tmp_path):
    with pytest.raises(ConfigError, match="either `data`"):
        load_config(SFTRunConfig, None, {"model": "m"})
    with pytest.raises(ConfigError, match="unknown task 'gp-x'"):
        load_config(SFTRunConfig, None, {"model": "m", "tasks": ["gp-x"]})
    with pytest.raises(ConfigError, match="'batch_size' must be at least 1"):
        load_config(SFTRunConfig, None, {"model": "m", "tasks": ["gp-l"], "batch_size": 0})
    with pytest.raises(ConfigError, match="report_to"):
        load_config(SFTRunConfig, None, {"model": "m", "tasks": ["gp-l"], "report_to": ["mlflow"]})
    config = load_config(SFTRunConfig, None, {"model": "m", "tasks": "gp-l", "lora": "yes", "max_length": 512})
    assert config.tasks == ["gp-l"] and config.lora is True and config.max_length == 512
    path = tmp_path / "saved.yaml"
    path.write_text(to_yaml(config))
    assert load_config(SFTRunConfig, path) == config


@pytest.mark.parametrize(("key", "value", "message"), [
    ("learning_rate", "nan", "finite"), ("learning_rate", "inf", "finite"), ("weight_decay", "-1", "weight_decay"),
    ("max_grad_norm", "0", "max_grad_norm"), ("lora_alpha", "0", "lora_alpha"), ("save_total_limit", "0", "save_total_limit"),
    ("seed", "-1", "'seed' must be from 0"), ("seed", str(2**32), "'seed' must be from 0"),
    ("data_seed", "-5", "'data_seed'"), ("episodes", str(10**8), "episodes"), ("revisions", "21", "revisions"),
    ("epochs", "0", "epochs"),
])
def test_sft_settings_out_of_range_are_refused_before_any_work(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SFTRunConfig, overrides={"model": "m", "tasks": ["gp-l"], key: value})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("learning_rate", "nan", "finite"), ("kl_coef", "nan", "finite"), ("temperature", "1e30", "temperature"),
    ("adam_eps", "-1", "adam_eps"), ("value_clip", "-1", "value_clip"), ("lora_dropout", "2", "lora_dropout"),
    ("seed", "-1", "seed"), ("max_new_tokens", str(10**8), "max_new_tokens"), ("value_hidden", str(10**9), "value_hidden"),
    ("prompts_per_step", str(10**8), "per step"), ("eval_episodes", str(10**9), "eval_episodes"),
    ("rollout_batch_size", "5000", "rollout_batch_size"), ("warmup_steps", str(10**20), "warmup_steps"),
])
def test_rl_settings_out_of_range_are_refused(key, value, message):
    from shiftlab.training.rl.config import RLConfig

    with pytest.raises(ConfigError, match=message):
        load_config(RLConfig, overrides={"model": "m", key: value})


def test_pretrain_and_study_settings_are_checked_up_front():
    from shiftlab.study.config import StudyConfig
    from shiftlab.training.pretrain import PretrainConfig

    with pytest.raises(ConfigError, match="support"):
        load_config(PretrainConfig, overrides={"output_dir": "x", "support": -5})
    for values, message in [({"metric": "bogus"}, "metric"), ({"checkpoints": 10**9}, "checkpoints"),
                            ({"pretrain": {"episodes": -1}}, "in `pretrain`"),
                            ({"pretrain": {"output_dir": "y"}}, "set by the study")]:
        with pytest.raises(ConfigError, match=message):
            load_config(StudyConfig, overrides=values)


def test_config_files_that_cannot_be_configs(tmp_path):
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(Example, tmp_path)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20_000)
    with pytest.raises(ConfigError, match="nested too deeply|not valid YAML"):
        load_config(Example, deep)


def test_damaged_checkpoints_are_named_before_anything_loads(tmp_path):
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl
    from shiftlab.training.sft import run_sft

    (tmp_path / "sft" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ConfigError, match="checkpoint-3.*incomplete"):
        run_sft(load_config(SFTRunConfig, overrides={"model": "m", "tasks": ["gp-l"], "output_dir": str(tmp_path / "sft")}))
    (tmp_path / "rl" / "checkpoint-000002").mkdir(parents=True)
    (tmp_path / "rl" / "checkpoint-000002" / "state.json").write_bytes(b"\xff\xfe junk")
    with pytest.raises(ConfigError, match="no readable state.json"):
        run_rl(load_config(RLConfig, overrides={"model": "m", "output_dir": str(tmp_path / "rl")}))


def test_a_run_log_with_junk_lines_keeps_its_records(tmp_path):
    from shiftlab.training.run_log import JsonlLog

    log = JsonlLog(tmp_path / "log.jsonl")
    log.write({"step": 1, "loss": 2.0})
    with open(log.path, "ab") as handle:
        handle.write(b"\xff\xfe\x00 junk\n[1, 2]\n" + b"[" * 50_000 + b"\n")
    log.write({"step": 2, "loss": 1.0})
    log.write({"step": 3, "loss": 0.5})
    log.truncate_after(2)
    assert log.read() == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]


def test_damaged_files_inside_a_checkpoint_are_named(tmp_path):
    from shiftlab.training.sft import run_sft

    checkpoint = tmp_path / "sft" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    config = load_config(SFTRunConfig, overrides={"model": "m", "tasks": ["gp-l"], "output_dir": str(tmp_path / "sft")})
    for state in ("{}", "garbage", '{"global_step": "x"}'):
        (checkpoint / "trainer_state.json").write_text(state)
        with pytest.raises(ConfigError, match="no readable trainer_state.json"):
            run_sft(config)
    (checkpoint / "trainer_state.json").write_text('{"global_step": 4}')
    (checkpoint / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError, match="model.safetensors is damaged"):
        run_sft(config)


def test_an_rl_checkpoint_with_counters_of_the_wrong_type_is_named(tmp_path):
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl

    checkpoint = tmp_path / "rl" / "checkpoint-000001"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.json").write_text('{"counters": {"step": "x"}}')
    with pytest.raises(ConfigError, match="no readable state.json"):
        run_rl(load_config(RLConfig, overrides={"model": "m", "output_dir": str(tmp_path / "rl")}))


def test_a_run_cannot_write_into_its_own_model_or_data(tmp_path):
    from shiftlab.training.rl.config import RLConfig

    with pytest.raises(ConfigError, match="output_dir is the model"):
        load_config(RLConfig, overrides={"model": str(tmp_path), "output_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="output_dir is the data"):
        load_config(SFTRunConfig, overrides={"model": "m", "data": str(tmp_path), "output_dir": str(tmp_path)})
