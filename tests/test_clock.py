"""Clock arithmetic, the third task: its dial, verifier, expert and prompts on their own, then end to end
through the generic paths (evaluation, the CLI, SFT, RL and the study) that name no task, which is
the point: a task arrives as one package and one registration line."""

from __future__ import annotations

import importlib.util
import json
import random
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from hypothesis import given
from hypothesis import strategies as st
from oracle import fast

from shiftlab.cli import main
from shiftlab.evaluation import evaluate
from shiftlab.policies import ExpertPolicy, RandomPolicy
from shiftlab.rollout import run_episodes
from shiftlab.task import check_env_options, get_preset, get_task, ood_presets
from shiftlab.tasks.clock import ENV_ID, ClockEnv, Outcome, RewardTable, verify
from shiftlab.tasks.clock.dial import first_hour, last_hour, time_after, wraps
from shiftlab.tasks.response import MAX_RESPONSE_CHARS

TRAINING = importlib.util.find_spec("trl") is not None
if TRAINING:
    from shiftlab.study import pipeline
    from shiftlab.study.config import StudyConfig, preset_values
    from shiftlab.training.base_model import build_base_model
    from shiftlab.training.config import load_config
    from shiftlab.training.expert_data import Source, episode_rows
    from shiftlab.training.rl.config import RLConfig
    from shiftlab.training.rl.trainer import run_rl
    from shiftlab.training.sft import SFTRunConfig, run_sft

needs_training = pytest.mark.skipif(not TRAINING, reason="needs the train extra (trl)")

PRESETS = ("clock", "clock/rule-ood", "clock/length-ood")
DIALS = st.tuples(st.integers(2, 1000), st.booleans())


def _walk(start: int, offset: int, dial: int, zero_based: bool) -> tuple[int, int]:
    """The oracle: move the hand one hour at a time, counting each step from the last number to the first."""
    first, last = (0, dial - 1) if zero_based else (1, dial)
    hour, passed = start, 0
    for _ in range(offset):
        hour, passed = (first, passed + 1) if hour == last else (hour + 1, passed)
    return hour, passed


def _answer(time, working: str = "") -> str:
    return json.dumps({"sum": working, "time": time})


def _numbers(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"-?\d+", text)}


# --- the dial ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dial", "zero_based", "start", "offset", "shown", "passed"), [
    (12, False, 9, 3, 12, 0),  # 12, not 0, on a 1..12 dial
    (12, False, 9, 4, 1, 1),
    (12, False, 12, 12, 12, 1),
    (12, False, 9, 7, 4, 1),
    (24, True, 23, 1, 0, 1),  # 0, not 24, on a 0..23 dial
    (24, True, 22, 1, 23, 0),
    (12, False, 10, 134, 12, 11),
    (2, True, 1, 0, 1, 0),
])
def test_the_dial_shows_its_own_numbers(dial, zero_based, start, offset, shown, passed):
    env = ClockEnv(dial=dial, zero_based=zero_based)
    _, info = env.reset(seed=0, options={"start": start, "offset": offset})
    assert (info["time_after"], info["wraps"]) == (shown, passed) == _walk(start, offset, dial, zero_based)
    assert (info["first"], info["last"]) == ((0, dial - 1) if zero_based else (1, dial))


@fast(300)
@given(DIALS, st.integers(0, 10**6), st.integers(0, 3000))
def test_the_arithmetic_is_the_hand_going_round(dial_kind, position, offset):
    dial, zero_based = dial_kind
    start = first_hour(zero_based) + position % dial
    assert (time_after(start, offset, dial, zero_based), wraps(start, offset, dial, zero_based)) \
        == _walk(start, offset, dial, zero_based)


def test_reset_alone_fixes_the_episode():
    env = ClockEnv()
    first = [env.reset(seed=s) for s in range(50)]
    random.seed(1)
    np.random.seed(1)
    env.step(_answer(3))
    again = [ClockEnv().reset(seed=s) for s in range(50)]
    assert first == again
    assert len({(info["start"], info["offset"]) for _, info in first}) > 30
    starts = {ClockEnv(dial=24, zero_based=True).reset(seed=s)[1]["start"] for s in range(400)}
    assert starts == set(range(24))
    assert {ClockEnv().reset(seed=s)[1]["start"] for s in range(400)} == set(range(1, 13))


# --- the verifier ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("response", "outcome"), [
    ('{"sum": "9+7=16, 16-12=4", "time": 4}', Outcome.CORRECT),
    ("{'sum': '9+7=16', 'time': '4'}", Outcome.CORRECT),
    ('```json\n{"time": 4,}\n```', Outcome.CORRECT),
    ('Time: 4', Outcome.CORRECT),
    ('{"time": 4.0}', Outcome.CORRECT),
    ('{"time": "+04"}', Outcome.CORRECT),
    ('first "time": 5, then the answer: {"time": 4}', Outcome.CORRECT),
    ('{"time": 4} no, {"time": 5}', Outcome.WRONG_TIME),
    ('{"time": 12}', Outcome.WRONG_TIME),
    ('{"time": 1}', Outcome.WRONG_TIME),
    ('{"time": 16}', Outcome.ILLEGAL),  # the plain sum is not on the dial
    ('{"time": 0}', Outcome.ILLEGAL),
    ('{"time": -8}', Outcome.ILLEGAL),
    ('{"time": 4.5}', Outcome.ILLEGAL),
    ('{"time": "four"}', Outcome.ILLEGAL),
    ('{"time": ""}', Outcome.ILLEGAL),
    ('{"time": ' + "4" * 5000 + "}", Outcome.ILLEGAL),
    ('{"runtime": 4}', Outcome.ILLEGAL),
    ('{"time_after": 4}', Outcome.ILLEGAL),
    ("4", Outcome.ILLEGAL),
    ("", Outcome.ILLEGAL),
    (None, Outcome.ILLEGAL),
    (4, Outcome.ILLEGAL),
    (["time", 4], Outcome.ILLEGAL),
    (b'{"time": 4}', Outcome.CORRECT),
    (b'{"time": \xff4}', Outcome.ILLEGAL),
    (" " * MAX_RESPONSE_CHARS + '{"time": 4}', Outcome.ILLEGAL),
])
def test_verifier_outcomes(response, outcome):
    verdict = verify(response, 9, 7, 12, False)
    assert verdict.outcome is outcome, verdict
    assert verdict.reward == RewardTable()[outcome] and verdict.success == (outcome is Outcome.CORRECT)
    assert verdict.feedback and len(verdict.feedback) < 300


def test_the_stated_dial_decides():
    """9 hours after 9 is 19 on a 24-hour dial: 7, the 12-hour habit, is wrong there; and a 12-hour
    dial numbered from 0 shows 0 where a 1..12 dial shows 12."""
    assert verify(_answer(2), 23, 3, 24, True).success and verify(_answer(19), 9, 10, 24, True).success
    assert verify(_answer(7), 9, 10, 24, True).outcome is Outcome.WRONG_TIME
    assert verify(_answer(0), 9, 3, 12, True).success and verify(_answer(12), 9, 3, 12, True).outcome is Outcome.ILLEGAL


@fast(400)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.lists(st.sampled_from(['"time"', "time", "Time", ":", " ", "'", '"', "`", "{", "}", ",", "-",
                                           "+", ".", "0", "4", "12", "99999999999999", "\n", "é"]),
                          max_size=40).map("".join)),
       DIALS, st.integers(0, 10**6), st.integers(0, 10**6))
def test_any_text_gets_a_verdict(response, dial_kind, position, offset):
    dial, zero_based = dial_kind
    start = first_hour(zero_based) + position % dial
    verdict = verify(response, start, offset, dial, zero_based)
    assert verdict.reward == RewardTable()[verdict.outcome] and isinstance(verdict.feedback, str)
    if verdict.time is not None:
        assert isinstance(verdict.time, int)


@fast(400)
@given(DIALS, st.integers(0, 10**6), st.integers(0, 10**6), st.integers(-50, 1050),
       st.sampled_from(["{t}", '"{t}"', "{t}.0", "x{t}", '"{t} o\'clock"']))
def test_feedback_never_gives_the_answer(dial_kind, position, offset, given_time, form):
    """A rejected answer's feedback holds only numbers the question or the answer already held."""
    dial, zero_based = dial_kind
    start = first_hour(zero_based) + position % dial
    response = '{"time": ' + form.format(t=given_time) + "}"
    verdict = verify(response, start, offset, dial, zero_based)
    if verdict.success:
        return
    known = {start, offset, dial, first_hour(zero_based), last_hour(dial, zero_based), given_time} | _numbers(response)
    assert _numbers(verdict.feedback) <= known, verdict.feedback
    answer = time_after(start, offset, dial, zero_based)
    if answer not in known:
        assert str(answer) not in re.findall(r"\d+", verdict.feedback)


def test_feedback_reads_as_promised():
    assert verify(_answer(4), 9, 7, 12, False).feedback == "Correct: 7 hours after 9, the clock shows 4."
    assert verify(_answer(5), 9, 7, 12, False).feedback == \
        "5 is not what the clock shows 7 hours after 9 on a 12-hour dial."
    assert "numbered 0 to 23" in verify(_answer(24), 9, 7, 24, True).feedback
    assert "1 hour after" in verify(_answer(5), 9, 1, 12, False).feedback


# --- the environment ---------------------------------------------------------------------------------

def test_the_env_contract():
    env = gym.make(ENV_ID, max_attempts=2)
    observation, info = env.reset(seed=4)
    assert observation == f"A clock has a 12-hour dial numbered 1 to 12. It shows {info['start']}. What does it " \
                          f"show {info['offset']} hours later?"
    assert info["attempts_left"] == 2 and {"dial", "zero_based", "start", "offset", "wraps"} <= set(info)
    wrong = info["first"] + (info["time_after"] - info["first"] + 1) % info["dial"]
    _, reward, terminated, truncated, step_info = env.step(_answer(wrong))
    assert (reward, terminated, truncated) == (-1.0, False, False) and "success" not in step_info
    assert step_info["outcome"] == "wrong_time" and step_info["attempts_left"] == 1 and step_info["answered"] == wrong
    _, reward, terminated, truncated, step_info = env.step(object())
    assert (reward, terminated, truncated, step_info["success"]) == (-2.0, False, True, False)
    with pytest.raises(ResetNeeded):
        env.step(_answer(1))
    _, info = env.reset(seed=4)
    _, reward, terminated, truncated, step_info = env.step(get_preset("clock").expert_answer(info))
    assert (reward, terminated, truncated, step_info["success"]) == (1.0, True, False, True)


@pytest.mark.parametrize(("options", "message"), [
    ({"dial": 1}, "dial must be an int from 2 to 1000"),
    ({"dial": 1001}, "dial must be"),
    ({"dial": 12.0}, "dial must be"),
    ({"dial": True}, "dial must be"),
    ({"zero_based": "yes"}, "zero_based must be true or false"),
    ({"offsets": (5, 1)}, "low <= high"),
    ({"offsets": (-1, 3)}, "low <= high"),
    ({"offsets": [1, 2, 3]}, "two ints"),
    ({"offsets": "1,30"}, "two ints"),
    ({"offsets": (1, 10**7)}, "1,000,000"),
    ({"max_attempts": 0}, "max_attempts must be a positive int"),
    ({"rewards": {"correct": -1.0}}, "must exceed"),
    ({"rewards": {"bonus": 1.0}}, "unknown reward 'bonus'"),
    ({"rewards": {"illegal": float("nan")}}, "finite"),
    ({"rewards": 3}, "rewards must be"),
    ({"resolution": 8}, "resolution"),
    ({"render_mode": "human"}, "render_mode"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ClockEnv(**options)


def test_yaml_shaped_options_and_reset_options():
    env = ClockEnv(offsets=[100, 100], rewards={"illegal": -5}, dial=60, zero_based=True)
    _, info = env.reset(seed=1)
    assert info["offset"] == 100 and env.rewards == RewardTable(illegal=-5)
    assert env.step("nothing")[1] == -5
    with pytest.raises(ValueError, match="options\\['start'\\] must be a number on a 60-hour dial numbered 0 to 59"):
        env.reset(options={"start": 60})
    check_env_options(list(PRESETS), {"max_attempts": 2, "rewards": {"correct": 2}})
    with pytest.raises(ValueError, match="'dial' is set by task 'clock'"):
        check_env_options(["clock"], {"dial": 24})


def test_render_draws_the_dial():
    env = ClockEnv(render_mode="rgb_array", resolution=96)
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8 and len(np.unique(image.reshape(-1, 3), axis=0)) > 2
    env = ClockEnv(render_mode="ansi", dial=1000)
    observation, _ = env.reset(seed=0)
    assert env.render() == observation


# --- expert, baseline and exploits -------------------------------------------------------------------

@pytest.mark.parametrize("name", PRESETS)
def test_the_expert_solves_every_preset_at_the_first_answer(name):
    preset = get_preset(name)
    env = preset.make_env()
    for seed in range(300):
        _, info = env.reset(seed=seed)
        _, reward, terminated, _, step_info = env.step(preset.expert_answer(info))
        assert terminated and step_info["success"] and reward == 1.0, (seed, info)
        assert json.loads(preset.expert_answer(info))["time"] == _walk(info["start"], info["offset"], info["dial"],
                                                                     info["zero_based"])[0]


def test_the_presets_mean_what_they_say():
    kinds = {name: (get_preset(name).env_kwargs["dial"], get_preset(name).env_kwargs["zero_based"],
                    tuple(get_preset(name).env_kwargs["offsets"]), get_preset(name).shift) for name in PRESETS}
    assert kinds == {"clock": (12, False, (1, 30), "id"), "clock/rule-ood": (24, True, (1, 30), "rule"),
                     "clock/length-ood": (12, False, (100, 500), "length")}
    assert {p.name for p in ood_presets("clock")} == {"clock/rule-ood", "clock/length-ood"}
    assert get_task("clock").answer_key == "time" and get_preset("clock").owner is get_task("clock")
    infos = [get_preset("clock/length-ood").make_env().reset(seed=s)[1] for s in range(50)]
    assert all(i["wraps"] >= 8 and 100 <= i["offset"] <= 500 for i in infos)


def test_random_fails_sometimes_and_revises_with_the_feedback():
    trajectories = run_episodes(get_preset("clock"), RandomPolicy(0), range(60), seed=0)
    successes = sum(t.success for t in trajectories)
    assert 0 < successes < 45
    revised = [t for t in trajectories if len(t.turns) > 1]
    assert revised and all(len(t.turns) <= 3 for t in trajectories)
    for trajectory in revised:
        first, second = trajectory.turns[:2]
        assert second.messages[-2] == {"role": "assistant", "content": first.response}
        assert first.info["feedback"] in second.messages[-1]["content"]
        assert second.messages[-1]["content"].startswith("Your answer was rejected.")


CONSTANTS = ["12", "0", "", "1", "{}", '{"time": 12}', '{"time": 0}', '{"time": 1}', '{"time": 6}', '{"time": "12"}',
             '"time": 1 "time": 2 "time": 3', '{"sum": "9+7=16", "time": 16}', "x" * 200_000]


@pytest.mark.parametrize("name", PRESETS)
def test_constant_answers_never_beat_the_expert(name):
    preset = get_preset(name)
    env = preset.make_env()
    for constant in CONSTANTS:
        returns = []
        for seed in range(24):
            env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(constant)
                total, done = total + reward, terminated or truncated
            returns.append(total)
        assert max(returns) <= 1.0 and np.mean(returns) < 0.5, (constant[:40], returns)


# --- the prompts and the task's data and figures -----------------------------------------------------

def test_prompt_styles():
    env = get_preset("clock/rule-ood").make_env()
    observation, info = env.reset(seed=2)
    default = get_task("clock").prompt().first_turn(observation, info)
    example = get_task("clock").prompt("example").first_turn(observation, info)
    assert len(default) == 1 and default[0]["content"].startswith(observation)
    assert "after 23 comes 0" in default[0]["content"] and "an integer from 0 to 23" in default[0]["content"]
    shown = json.loads(example[0]["content"].split("Example answer")[1].splitlines()[1])
    assert set(shown) == {"sum", "time"} and f"{info['start']}+{info['offset']}=" not in shown["sum"]
    assert example[0]["content"].endswith("Output only the JSON object.")
    with pytest.raises(KeyError, match="example"):
        get_task("clock").prompt("terse")


def test_metrics_split_by_wrapping_and_catch_the_twelve_hour_habit():
    def record(success, passed, dial=24, start=9, offset=10, answered=None):
        shown = time_after(start, offset, dial, dial == 24)
        return {"success": success, "start": {"dial": dial, "zero_based": dial == 24, "start": start,
                                              "offset": offset, "time_after": shown, "wraps": passed},
                "turns": [{"point": 0, "reward": 0.0, "answered": answered}]}

    records = [record(True, 1), record(False, 1, answered=7), record(True, 0, answered=19), record(False, 0, dial=12)]
    figures = get_task("clock").metrics(records, 3)
    assert figures["wrap_success_rate"] == 0.5 and figures["no_wrap_success_rate"] == 0.5
    assert figures["twelve_hour_rate"] == pytest.approx(1 / 3)
    assert get_task("clock").metrics([], 3) == {}


def test_pretraining_data_and_support_questions():
    task = get_task("clock")
    assert task.pretraining_sources(100, images=True) == [] and task.support_questions(images=True) == []
    sources = task.pretraining_sources(100, images=False)
    assert {(s.env["dial"], s.env["zero_based"]) for s in sources} == {(12, False), (24, True)}
    assert [s.revisions for s in sources].count(1) == 1 and all(s.task == "clock" for s in sources)
    rng = np.random.default_rng(0)
    remainder, next_hour = task.support_questions(images=False)
    for _ in range(50):
        question, answer, image = remainder(rng)
        number, divisor = map(int, re.findall(r"\d+", question))
        assert image is None and int(answer) == number % divisor
        question, answer, _ = next_hour(rng)
        dial, *_, hour = map(int, re.findall(r"\d+", question))
        assert int(answer) == _walk(hour, 1, dial, dial == 24)[0]


# --- end to end through the generic paths ------------------------------------------------------------

def test_evaluation_and_the_cli(tmp_path, capsys):
    results = evaluate(list(PRESETS), ExpertPolicy(), 16, tmp_path / "eval", batch_size=8)
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    for name in PRESETS:
        assert saved[name]["success_rate"] == results[name]["success_rate"] == 1.0
        assert saved[name]["wrap_success_rate"] == 1.0 and saved[name]["shift"] == get_preset(name).shift
    assert "no_wrap_success_rate" not in saved["clock/length-ood"] and "twelve_hour_rate" in saved["clock/rule-ood"]
    assert saved["clock/rule-ood"]["twelve_hour_rate"] == 0.0
    random_results = evaluate(["clock"], RandomPolicy(0), 32, tmp_path / "random")
    assert 0 < random_results["clock"]["success_rate"] < 1

    assert main(["eval", "--tasks", "clock,clock/length-ood", "--episodes", "4", "--out", str(tmp_path / "cli"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "results.json").read_text())["clock"]["success_rate"] == 1.0
    capsys.readouterr()
    assert main(["tasks"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert {name: listed[name] for name in PRESETS} == {"clock": "id", "clock/rule-ood": "rule",
                                                        "clock/length-ood": "length"}
    assert main(["play", "--task", "clock/rule-ood", "--out", str(tmp_path / "play"), "--quiet"]) == 0
    assert "clock/rule-ood seed 0: solved after 1 answer(s)" in capsys.readouterr().out
    assert list((tmp_path / "play").glob("*.png"))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(build_base_model(tmp_path_factory.mktemp("lm") / "model", kind="lm", size="tiny", seed=0))


@needs_training
def test_sft_learns_from_clock_episodes(tiny_lm, tmp_path):
    config = load_config(SFTRunConfig, overrides={
        "model": tiny_lm, "tasks": ["clock"], "episodes": 16, "revisions": 1, "output_dir": str(tmp_path / "sft"),
        "max_steps": 6, "batch_size": 8, "learning_rate": 5e-3, "lr_scheduler": "constant", "warmup_ratio": 0.0,
        "logging_steps": 1, "save_steps": 1000, "report_to": ["none"]})
    result = run_sft(config)
    losses = [r["loss"] for r in result.log if "loss" in r]
    assert len(losses) == 6 and np.mean(losses[-2:]) < np.mean(losses[:2])
    rows = list(episode_rows(Source("clock", 8, revisions=1)))
    env = get_preset("clock").make_env()
    for row in rows:  # each ends with a right answer (the expert's, or a lucky guess)
        question = env.reset(seed=row["seed"])[1]
        assert json.loads(row["messages"][-1]["content"])["time"] == question["time_after"]
    assert any(r["messages"][-2]["content"].startswith("Your answer was rejected.") for r in rows)


@needs_training
def test_rl_trains_on_clock_and_evaluates_its_shifts(tiny_lm, tmp_path):
    config = load_config(RLConfig, overrides={
        "model": tiny_lm, "output_dir": str(tmp_path / "rl"), "task": "clock", "env": {"max_attempts": 2}, "steps": 2,
        "prompts_per_step": 2,
        "group_size": 2, "max_new_tokens": 12, "eval_steps": 2, "eval_at_start": False, "eval_episodes": 2,
        "save_steps": 1000, "report_to": ["none"], "learning_rate": 1e-3})
    result = run_rl(config, progress=False)
    train = [e for e in result.log if e["kind"] == "train"]
    evals = [e for e in result.log if e["kind"] == "eval"]
    assert [e["step"] for e in train] == [1, 2] and [e["step"] for e in evals] == [2]
    assert all(np.isfinite(e["loss"]) for e in train)
    assert {f"eval/{name}/success_rate" for name in PRESETS} <= set(evals[-1])
    assert "eval/clock/length-ood/wrap_success_rate" in evals[-1]


@needs_training
def test_the_study_runs_on_clock(tmp_path):
    tiny = preset_values("tiny")
    config = load_config(StudyConfig, overrides={
        **tiny, "task": "clock", "prompt": None, "env": {"max_attempts": 1}, "output_dir": str(tmp_path), "eval_base": False,
        "pretrain": None, "seeds": [0],
        "eval_episodes": 2, "init_episodes": 16, "sft_episodes": 16, "init": {**tiny["init"], "max_steps": 3, "replay_share": 0.0},
        "rl": {**tiny["rl"], "max_new_tokens": 8}})
    result = pipeline.run_study(config, log=lambda line: None)
    assert {p.name for p in result["paths"]["plots"]} == {"sft.png", "rl.png"}
    init = json.loads((tmp_path / "eval" / "init" / "results.json").read_text())
    assert set(init) == set(PRESETS) and "wrap_success_rate" in init["clock/length-ood"]
    assert [p["step"] for p in result["results"]["branches"]["rl"]["0"]] == [1, 2]
