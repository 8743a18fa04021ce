"""SFT through TRL on a real tiny model: the loss falls, answers take the expert's format, LoRA runs,
an interrupted run resumes at the same step and data position, compute is counted."""

import json

import pytest

pytest.importorskip("trl")

import datasets  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, TrainerCallback  # noqa: E402

from shiftlab.cli import main  # noqa: E402
from shiftlab.training.base_model import build_base_model  # noqa: E402
from shiftlab.training.compute import flop_parameters, read_compute  # noqa: E402
from shiftlab.training.config import ConfigError, load_config  # noqa: E402
from shiftlab.training.expert_data import Source, build_dataset  # noqa: E402
from shiftlab.training.sft import SFTRunConfig, run_sft  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(build_base_model(tmp_path_factory.mktemp("lm") / "model", kind="lm", size="tiny", seed=0))


@pytest.fixture(scope="module")
def gp_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "gp-l"
    build_dataset([Source("gp-l", 64)], seed=0).save_to_disk(str(path))
    return str(path)


def _config(model, data, out, **values):
    base = {"model": model, "data": data, "output_dir": str(out), "batch_size": 8, "learning_rate": 3e-3,
            "logging_steps": 1, "save_steps": 1000, "report_to": ["none"], "warmup_ratio": 0.0}
    return load_config(SFTRunConfig, overrides={**base, **values})


def _losses(log):
    return {r["step"]: r["loss"] for r in log if "loss" in r}


@pytest.fixture(scope="module")
def trained(tiny_lm, gp_data, tmp_path_factory):
    """Long enough for the tiny model to learn the answer format (about 20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("run")
    return run_sft(_config(tiny_lm, gp_data, out, max_steps=160, save_steps=80, lr_scheduler="constant", learning_rate=5e-3))


def test_loss_falls_and_compute_is_counted(trained, tiny_lm):
    losses = list(_losses(trained.log).values())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:3]) / 3
    model = AutoModelForCausalLM.from_pretrained(trained.final_model)
    parameters = flop_parameters(model)
    assert parameters < sum(p.numel() for p in model.parameters())  # embeddings left out
    first, last = (read_compute(trained.output_dir / f"checkpoint-{s}") for s in (80, 160))
    assert first["parameters"] == parameters and first["step"] == 80
    assert 0 < first["tokens"] < last["tokens"] and last["flops"] == 6 * parameters * last["tokens"]
    assert read_compute(trained.final_model)["tokens"] == trained.tokens == last["tokens"]
    steps = [r["step"] for r in trained.log if "flops" in r and "loss" in r]
    assert steps == sorted(steps) and steps[0] == 1


def test_trained_model_answers_in_the_expert_format(trained):
    """The format, not the arithmetic: a JSON object with the three keys, lists of cards and numbers,
    and a formula of digits and operators stating "=24" (the 84k-parameter model rarely solves)."""
    import re

    from shiftlab.policies.hf import HFPolicy
    from shiftlab.rollout import run_episodes
    from shiftlab.task import get_preset

    policy = HFPolicy(str(trained.final_model), max_new_tokens=64, batch_size=8)
    trajectories = run_episodes(get_preset("gp-l"), policy, range(8), seed=10_000)
    first_answers = [t.turns[0].response for t in trajectories]
    in_format = 0
    for response in first_answers:
        try:
            answer = json.loads(response)
        except ValueError:
            continue
        in_format += (isinstance(answer, dict) and {"cards", "number", "formula"} <= set(answer)
                      and isinstance(answer["cards"], list) and isinstance(answer["number"], list)
                      and re.fullmatch(r"[0-9+\-*/() ]+=24", str(answer["formula"])) is not None)
    assert in_format >= 6, first_answers


class Interrupt(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


def test_resume_continues_at_the_same_step_and_data_position(tiny_lm, gp_data, tmp_path):
    full = run_sft(_config(tiny_lm, gp_data, tmp_path / "full", max_steps=8, save_steps=4))
    config = _config(tiny_lm, gp_data, tmp_path / "cut", max_steps=8, save_steps=4)
    with pytest.raises(KeyboardInterrupt):
        run_sft(config, callbacks=[Interrupt(at_step=6)])
    assert (tmp_path / "cut" / "checkpoint-4").is_dir() and not (tmp_path / "cut" / "final").exists()
    resumed = run_sft(config)
    # Same batches in the same order from the same weights: the same losses after the checkpoint.
    want, got = _losses(full.log), _losses(resumed.log)
    assert sorted(got) == list(range(1, 9))  # steps 5 and 6 logged once, not twice
    for step in range(5, 9):
        assert got[step] == pytest.approx(want[step], rel=1e-4, abs=1e-5)
    assert resumed.tokens == full.tokens
    a = AutoModelForCausalLM.from_pretrained(full.final_model).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed.final_model).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_refuses_a_changed_data_order(tiny_lm, gp_data, tmp_path):
    run_sft(_config(tiny_lm, gp_data, tmp_path, max_steps=2, save_steps=2))
    with pytest.raises(ConfigError, match="different 'batch_size'"):
        run_sft(_config(tiny_lm, gp_data, tmp_path, max_steps=4, save_steps=2, batch_size=4))
    with pytest.raises(ConfigError, match="already has checkpoints"):
        run_sft(_config(tiny_lm, gp_data, tmp_path, max_steps=4, resume="never"))


def test_lora_trains_adapters_and_saves_a_merged_model(tiny_lm, gp_data, tmp_path):
    result = run_sft(_config(tiny_lm, gp_data, tmp_path, max_steps=4, lora=True, lora_r=4, learning_rate=1e-2))
    assert all(r["loss"] == r["loss"] for r in result.log if "loss" in r)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(result.final_model).state_dict()
    assert set(base) == set(merged)  # a plain model: no adapter weights left
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    assert changed and all("proj" in k for k in changed)  # only adapted linear layers moved


def test_completion_loss_trains_on_the_last_answer(tiny_lm, tmp_path):
    data = tmp_path / "rev"
    build_dataset([Source("gp-l", 16, revisions=1)], seed=0).save_to_disk(str(data))
    result = run_sft(_config(tiny_lm, str(data), tmp_path / "run", max_steps=3, loss="completion"))
    assert result.steps == 3 and all(r["loss"] > 0 for r in result.log if "loss" in r)


def test_vlm_sft_on_card_images(tmp_path):
    model = build_base_model(tmp_path / "vlm", kind="vlm", size="tiny", seed=0)
    config = load_config(SFTRunConfig, overrides={
        "model": str(model), "tasks": ["gp-vl"], "episodes": 16, "output_dir": str(tmp_path / "run"),
        "max_steps": 6, "batch_size": 4, "learning_rate": 3e-3, "logging_steps": 1, "report_to": ["none"],
        "freeze_vision": True,
    })
    result = run_sft(config)
    losses = list(_losses(result.log).values())
    assert losses[-1] < losses[0]
    reloaded = AutoModelForImageTextToText.from_pretrained(result.final_model)
    before = AutoModelForImageTextToText.from_pretrained(model)
    vision = [k for k in before.state_dict() if "vision_tower" in k]
    assert vision and all(torch.equal(before.state_dict()[k], reloaded.state_dict()[k]) for k in vision)


def test_env_options_change_the_expert_episodes(tiny_lm, tmp_path):
    config = _config(tiny_lm, None, tmp_path / "run", tasks=["gp-l"], episodes=4, env={"num_cards": 3}, max_steps=1)
    run_sft(config)
    rows = datasets.load_from_disk(str(tmp_path / "run" / "data"))
    answers = [json.loads(row["messages"][-1]["content"]) for row in rows]
    assert len(answers) == 4 and all(len(a["cards"]) == 3 for a in answers)
    with pytest.raises(ConfigError, match="not to saved `data`"):
        _config(tiny_lm, str(tmp_path / "run" / "data"), tmp_path / "x", env={"num_cards": 3})
    with pytest.raises(ConfigError, match="'face_cards_as_ten' is set by task"):
        _config(tiny_lm, None, tmp_path / "x", tasks=["gp-l"], env={"face_cards_as_ten": False})


def test_replay_mixes_rows_of_another_dataset_at_its_share(tiny_lm, tmp_path):
    replay = tmp_path / "replay"
    build_dataset([Source("gp-l/rule-ood", 40, {"target": 18})], seed=5).save_to_disk(str(replay))
    replay_prompts = {row["messages"][0]["content"] for row in datasets.load_from_disk(str(replay))}

    def mixed(out, data_seed):
        run_sft(_config(tiny_lm, None, tmp_path / out, tasks=["gp-l"], episodes=24, data_seed=data_seed,
                        replay=str(replay), replay_share=0.25, max_steps=1))
        return [row["messages"][0]["content"] for row in datasets.load_from_disk(str(tmp_path / out / "data"))]

    first, again, other = mixed("a", 0), mixed("b", 0), mixed("c", 1)
    drawn = [p for p in first if p in replay_prompts]
    assert len(first) == 32 and len(drawn) == 8  # 24 expert rows and a quarter of 32 replayed
    assert first == again and {p for p in other if p in replay_prompts} != set(drawn)
    assert first[:8] != [p for p in first if p not in replay_prompts][:8]  # shuffled in, not appended


def test_replay_bad_settings_are_one_clear_error(tiny_lm, gp_data, tmp_path):
    with pytest.raises(ConfigError, match="together, or neither"):
        _config(tiny_lm, gp_data, tmp_path / "x", replay_share=0.2)
    with pytest.raises(ConfigError, match="together, or neither"):
        _config(tiny_lm, gp_data, tmp_path / "x", replay=gp_data)
    with pytest.raises(ConfigError, match="'replay_share'"):
        _config(tiny_lm, gp_data, tmp_path / "x", replay=gp_data, replay_share=1.0)
    with pytest.raises(ConfigError, match="replay '/no/such' is not a dataset directory"):
        run_sft(_config(tiny_lm, gp_data, tmp_path / "y", replay="/no/such", replay_share=0.2))
    with pytest.raises(ConfigError, match="has 64 rows"):  # 0.9 of 64 rows would need 576 replayed
        run_sft(_config(tiny_lm, gp_data, tmp_path / "z", replay=gp_data, replay_share=0.9, max_steps=1))


def test_cli_sft_with_a_config_file_and_flags(tiny_lm, gp_data, tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text(f"model: {tiny_lm}\ndata: {gp_data}\nmax_steps: 50\nbatch_size: 4\nreport_to: [tensorboard]\n"
                      "logging_steps: 1\n")
    assert main(["sft", "--config", str(config), "--max-steps", "2", "--output-dir", str(tmp_path / "run")]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    lines = (tmp_path / "run" / "logs.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines][:2] == [1, 2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "./no-such-model", "--tasks", "gp-l"], "does not exist"),
        (["--model", "m", "--tasks", "gp-l", "--batch-size", "zero"], "'batch_size' must be an integer"),
        (["--model", "m"], "either `data`"),
        (["--model", "m", "--data", "/no/such/data"], "is not a dataset directory"),
    ],
)
def test_cli_sft_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys, tiny_lm):
    argv = [a if a != "m" else tiny_lm for a in argv]
    assert main(["sft", *argv, "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cli_sft_data_and_build_model(tmp_path, capsys):
    assert main(["sft-data", "--tasks", "gp-l,virl-l", "--episodes", "2", "--env", "max_attempts=3",
                 "--out", str(tmp_path / "d")]) == 0
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "d"))
    assert set(ds["task"]) == {"gp-l", "virl-l"} and json.loads(ds[0]["env"]) == {"max_attempts": 3}
    assert main(["sft-data", "--tasks", "gp-l", "--env", "oops", "--out", str(tmp_path / "e")]) == 2
    assert main(["build-model", "--size", "tiny", "--tokenizer", "byte", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "config.json").is_file()


def test_pretrain_builds_a_base_model_from_a_broad_mixture(tmp_path, capsys):
    import datasets

    out = tmp_path / "base"
    argv = ["pretrain", "--output-dir", str(out), "--size", "tiny", "--episodes", "8", "--support", "20",
            "--max-steps", "3", "--batch-size", "4"]
    assert main(argv) == 0
    assert "base model in" in capsys.readouterr().out
    mixture = datasets.load_from_disk(str(out / "mixture"))
    tasks = set(mixture["task"])
    assert {"gp-l", "virl-l", "support"} <= tasks
    rules = {json.loads(e).get("face_cards_as_ten") for e in mixture["env"]}
    assert {True, False} <= rules
    assert AutoModelForCausalLM.from_pretrained(out / "final").config.num_hidden_layers == 2
    assert read_compute(out / "final")["step"] == 3
    # Running it again resumes the finished run instead of starting over.
    assert main(argv) == 0
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--output-dir", str(tmp_path / "x"), "--kind", "rnn"])
    assert exit_.value.code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("output_dir: x\nkind: rnn\n")
    assert main(["pretrain", "--config", str(bad)]) == 2
    assert "'kind' must be one of 'lm', 'vlm'" in capsys.readouterr().err
