"""Data parallel SFT and RL: a run launched with the real `accelerate launch` CLI on 2 CPU processes
(gloo) ends where the same run on one process does, at the same global batch.

What is compared, and why it can be compared:
- RL (GRPO with 2 epochs x 2 mini-batches and micro-batches of 1; PPO, whose advantages are whitened
  over both processes): the final weights and every logged figure. The toy task runs single-turn
  episodes and `rollout_batch_size` is one process's share of a step, so each process generates
  exactly the batches the one-process run generates and draws the same samples (HFPolicy seeds a
  batch from its prompts). The 2-process GRPO run is also cut after step 1 and resumed.
- SFT through TRL (`shiftlab sft`): the final weights and the logged losses and token counts.
The updates agree up to floating-point summation order (Adam magnifies it where a gradient is near
zero): the weights must differ by under 1% (L2) of how far training moved them, which gradients left
unsummed break (checked by hand). Adam does not see a gradient scaled as a whole (averaged
over the processes instead of summed, or normalised per process where each sample weighs the same),
so the logged loss and gradient norm are compared too, which it does break.

Run as a script under `accelerate launch`, this file is the launched program: it registers the toy
task and runs `shiftlab` CLI commands, `python test_distributed.py rl a.yaml sft b.yaml ...`.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402
import toy_task  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from shiftlab.training.base_model import build_base_model  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402
from shiftlab.training.expert_data import Source, build_dataset  # noqa: E402
from shiftlab.training.rl.config import RLConfig  # noqa: E402
from shiftlab.training.rl.trainer import run_rl  # noqa: E402
from shiftlab.training.sft import SFTRunConfig, run_sft  # noqa: E402

TIMING = ("seconds/step", "seconds/rollout", "seconds/update", "samples_per_second", "answer_tokens_per_second",
          "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_tokens_per_second")
LAUNCH_TIMEOUT = 240


def _rl(model: str, out: Path, **values) -> dict:
    return {"model": model, "output_dir": str(out), "task": toy_task.PRESET, "env": {"max_attempts": 1},
            "steps": 2, "prompts_per_step": 2, "group_size": 2, "rollout_batch_size": 2, "max_new_tokens": 8,
            "eval_steps": 0, "save_steps": 1, "report_to": ["none"], "learning_rate": 1e-2, **values}


GRPO = {"epochs": 2, "mini_batches": 2, "micro_batch_size": 1}
PPO = {"algorithm": "ppo", "group_size": 1, "prompts_per_step": 4, "value_hidden": [16], "micro_batch_size": 2}


def _sft(model: str, data: str, out: Path) -> dict:
    return {"model": model, "data": data, "output_dir": str(out), "batch_size": 8, "max_steps": 3,
            "learning_rate": 3e-3, "logging_steps": 1, "save_steps": 2, "report_to": ["none"],
            "warmup_ratio": 0.0, "lr_scheduler": "constant"}


def _write(path: Path, values: dict) -> str:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return str(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(*commands: str, cwd: Path) -> subprocess.CompletedProcess:
    """This file under `accelerate launch` on 2 CPU processes, in a process group of its own that is
    killed whole if it outlives its time, so a hung collective leaves no process behind."""
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), __file__, *commands]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(argv, process.returncode, output)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 2-process runs (one launch) and the same runs on this process."""
    root = tmp_path_factory.mktemp("distributed")
    model = str(build_base_model(root / "model", kind="lm", size="tiny", seed=0))
    data = root / "data"
    build_dataset([Source("gp-l", 48)], seed=0).save_to_disk(str(data))
    two, one = root / "two", root / "one"
    configs = {
        "grpo-cut": _rl(model, two / "grpo", steps=1, **GRPO), "grpo": _rl(model, two / "grpo", **GRPO),
        "ppo": _rl(model, two / "ppo", **PPO), "sft": _sft(model, str(data), two / "sft"),
    }
    paths = {name: _write(root / f"{name}.yaml", values) for name, values in configs.items()}
    launched = _launch("rl", paths["grpo-cut"], "rl", paths["grpo"], "rl", paths["ppo"], "sft", paths["sft"],
                       cwd=root)
    assert launched.returncode == 0, launched.stdout[-6000:]
    with toy_task.registered():
        single = {
            "grpo": run_rl(load_config(RLConfig, overrides=_rl(model, one / "grpo", **GRPO)), progress=False),
            "ppo": run_rl(load_config(RLConfig, overrides=_rl(model, one / "ppo", **PPO)), progress=False),
        }
    single["sft"] = run_sft(load_config(SFTRunConfig, overrides=_sft(model, str(data), one / "sft")))
    return {"model": Path(model), "two": two, "one": single, "stdout": launched.stdout}


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def _assert_same_update(start: dict, one: dict, two: dict) -> None:
    """Equal up to a small fraction of how far training moved the weights (L2 over all of them: Adam
    magnifies summation noise in the few weights whose gradient is near zero, a real bug moves them all)."""
    def norm(a: dict, b: dict) -> float:
        return math.sqrt(sum(float((a[k] - b[k]).double().square().sum()) for k in a))

    moved, apart = norm(one, start), norm(one, two)
    print(f"2-process weights {apart:.3g} apart, training moved them {moved:.3g}")
    assert moved > 1e-2, "training did not move the weights: nothing is compared"
    assert apart <= 1e-2 * moved, f"2-process weights differ by {apart:.3g} (training moved them {moved:.3g})"


def _assert_same_log(one: list[dict], two: list[dict]) -> None:
    assert len(one) == len(two)
    for a, b in zip(one, two, strict=True):
        a, b = ({k: v for k, v in e.items() if k not in TIMING} for e in (a, b))
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) and math.isfinite(a[key]):
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
            else:
                assert a[key] == b[key], (a["step"], key)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_rl_on_two_processes_matches_one(runs, algorithm):
    one, two = runs["one"][algorithm], runs["two"] / algorithm
    _assert_same_update(_weights(runs["model"]), _weights(one.final_model), _weights(two / "final"))
    _assert_same_log(one.log, _log(two / "log.jsonl"))  # one line per step: the main process wrote it
    assert [e["episodes"] for e in one.log] == [4, 8]
    checkpoint = two / "checkpoint-000002"
    assert {"random_states_0.pkl", "random_states_1.pkl", "state.json"} <= {p.name for p in checkpoint.iterdir()}
    assert not list(two.glob("*.tmp"))
    if algorithm == "ppo":
        value_heads = (load_file(str(d / "value_head.safetensors")) for d in (one.final_model, two / "final"))
        a, b = value_heads
        assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def test_sft_on_two_processes_matches_one(runs):
    one, two = runs["one"]["sft"], runs["two"] / "sft"
    _assert_same_update(_weights(runs["model"]), _weights(one.final_model), _weights(two / "final"))
    losses = [[(e["step"], e["loss"], e["tokens"]) for e in log if "loss" in e] for log in (one.log, _log(two / "logs.jsonl"))]
    assert len(losses[0]) == len(losses[1]) == 3
    for (step_a, loss_a, tokens_a), (step_b, loss_b, tokens_b) in zip(*losses, strict=True):
        assert (step_a, tokens_a) == (step_b, tokens_b) and loss_b == pytest.approx(loss_a, rel=1e-4)
    assert json.loads((two / "final" / "compute.json").read_text())["tokens"] == one.tokens


def test_sft_batch_must_split_over_the_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    config = load_config(SFTRunConfig, overrides=_sft("no-model", "no-data", tmp_path))
    with pytest.raises(ConfigError, match=r"batch_size \(8\) must be a multiple of the number of processes \(3\)"):
        run_sft(config)


def test_vllm_rollouts_need_vllm_and_a_gpu(tmp_path, monkeypatch):
    import importlib.util

    from shiftlab.training.rl import vllm_rollout

    config = load_config(RLConfig, overrides={**_rl("m", tmp_path), "task": "gp-l", "rollout_engine": "vllm"})
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs a CUDA GPU and `pip install shiftlab\[vllm\]` \(vllm is not"):
        run_rl(config, progress=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"\(no CUDA device here\)"):
        vllm_rollout.check_available()
    with pytest.raises(ConfigError, match="LoRA"):
        load_config(RLConfig, overrides={**_rl("m", tmp_path), "task": "gp-l", "rollout_engine": "vllm",
                                         "lora": True})


def _run_commands(argv: list[str]) -> int:
    """The launched program: `shiftlab` CLI commands in turn, with the toy task registered."""
    from shiftlab.cli import main

    with toy_task.registered():
        for command, config in zip(argv[::2], argv[1::2], strict=True):
            code = main([command, "--config", config])
            if code:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(_run_commands(sys.argv[1:]))
