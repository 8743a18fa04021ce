"""Bad input, as a hostile user types it: every case runs `shiftlab` in a subprocess and must end with
one line naming the problem, exit status 2 for what the user gave and 1 for what failed under them,
and no traceback (unless --debug asks for one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def shiftlab(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def assert_one_line(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    err = result.stderr.strip()
    assert result.returncode == code, (result.returncode, err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.fixture
def a_file(tmp_path) -> str:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return str(path)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["eval", "--seed", "-1", "--out", "{tmp}/e"], ["--seed", "at least 0"]),
        (["play", "--seed", "-1", "--out", "{tmp}/p"], ["--seed"]),
        (["build-model", "--seed", "-1", "--out", "{tmp}/m"], ["--seed"]),
        (["eval", "--episodes", "0", "--out", "{tmp}/e"], ["--episodes"]),
        (["eval", "--seed", "x", "--out", "{tmp}/e"], ["--seed", "not an integer"]),
        (["eval", "--tasks", "", "--out", "{tmp}/e"], ["no task"]),
        (["eval", "--tasks", " , ", "--out", "{tmp}/e"], ["no task"]),
        (["eval", "--tasks", "gp-l,nope", "--out", "{tmp}/e"], ["unknown task 'nope'"]),
        (["eval", "--tasks", "gp-vl", "--resolution", "-5", "--out", "{tmp}/e"], ["resolution"]),
        (["eval", "--tasks", "gp-vl", "--resolution", "0", "--out", "{tmp}/e"], ["resolution"]),
        (["eval", "--tasks", "gp-vl", "--resolution", "1000000", "--out", "{tmp}/e"], ["resolution"]),
        (["eval", "--tasks", "virl-vl", "--resolution", "5", "--out", "{tmp}/e"], ["resolution"]),
        (["eval", "--batch-size", "100000000", "--out", "{tmp}/e"], ["batch size"]),
        (["eval", "--timeout", "nan", "--out", "{tmp}/e"], ["--timeout"]),
        (["eval", "--timeout", "0", "--out", "{tmp}/e"], ["--timeout"]),
        (["eval", "--retries", "-1", "--out", "{tmp}/e"], ["--retries"]),
        (["eval", "--max-response-chars", "0", "--out", "{tmp}/e"], ["--max-response-chars"]),
        (["eval", "--policy", "random:-1", "--out", "{tmp}/e"], ["random:SEED"]),
        (["eval", "--policy", "random:99999999999999999999", "--out", "{tmp}/e"], ["random:SEED"]),
        (["eval", "--retries", "1000000000", "--out", "{tmp}/e"], ["--retries", "at most 100"]),
        (["eval", "--out", ""], ["empty"]),
        (["sft", "--model", "{tmp}", "--tasks", "gp-l", "--output-dir", "{tmp}"], ["model"]),
        (["sft", "--model", "{tmp}/m", "--tasks", "gp-l", "--grad-accum", "1000000000000"], ["grad_accum"]),
        (["eval", "--policy", "hf:", "--out", "{tmp}/e"], ["unknown policy"]),
        (["eval", "--policy", "hf:{tmp}/no-such-model", "--out", "{tmp}/e"], ["does not exist"]),
        (["eval", "--out", "{file}"], ["not a directory"]),
        (["eval", "--out", "{file}/under"], ["--out"]),
        (["virl-export", "--out", "{tmp}/v", "--pano-width", "10000000"], ["pano width"]),
        (["virl-export", "--out", "{tmp}/v", "--pano-width", "101"], ["pano width"]),
        (["virl-export", "--out", "{tmp}/v", "--rotation", "nan"], ["rotation"]),
        (["virl-export", "--out", "{tmp}/v", "--rotation", "inf"], ["rotation"]),
        (["virl-export", "--out", "{file}"], ["not a directory"]),
        (["virl-export", "--out", "{tmp}/v", "--routes", "0"], ["--routes"]),
        (["virl-check", "{file}"], ["not a directory"]),
        (["sft-data", "--tasks", "gp-l", "--env", "target=99999", "--episodes", "2", "--out", "{tmp}/d"],
         ["target"]),
        (["sft-data", "--tasks", "gp-l", "--env", "targte=12", "--episodes", "2", "--out", "{tmp}/d"], ["targte"]),
        (["sft-data", "--tasks", "gp-l", "--env", "num_cards=99", "--episodes", "2", "--out", "{tmp}/d"],
         ["num_cards"]),
        (["study", "--preset", "tiny", "--output-dir", "{file}"], ["not a directory"]),
        (["build-model", "--size", "tiny", "--out", "{file}"], ["not a directory"]),
        (["build-model", "--seed", "99999999999999999999", "--out", "{tmp}/m"], ["--seed", "at most"]),
        (["sft-data", "--tasks", "gp-l", "--revisions", "1000000000", "--out", "{tmp}/d"], ["revisions"]),
        (["sft-data", "--tasks", "gp-l", "--episodes", "100000000", "--out", "{tmp}/d"], ["episodes"]),
        (["sft-data", "--tasks", "gp-l", "--env", "face_cards_as_ten=false", "--out", "{tmp}/d"], ["set by task"]),
        (["sft-data", "--tasks", "gp-l", "--env", "rewards=5", "--out", "{tmp}/d"], ["RewardTable"]),
        (["sft-data", "--tasks", "gp-l", "--env", "target=abc", "--out", "{tmp}/d"], ["'abc'"]),
        (["sft-data", "--tasks", "gp-l", "--out", "{file}"], ["not a directory"]),
        (["sft", "--model", "{tmp}/m", "--tasks", "gp-l", "--learning-rate", "nan"], ["learning_rate", "finite"]),
        (["sft", "--model", "{tmp}/m", "--tasks", "gp-l", "--max-grad-norm", "-1"], ["max_grad_norm"]),
        (["sft", "--model", "{tmp}/m", "--tasks", "gp-l", "--seed", "-1"], ["seed"]),
        (["sft", "--model", "{tmp}/m", "--tasks", "gp-l", "--episodes", "100000000"], ["episodes"]),
        (["sft", "--config", "{tmp}"], ["not a regular file"]),
        (["rl", "--model", "{tmp}/m", "--learning-rate", "inf"], ["learning_rate", "finite"]),
        (["rl", "--model", "{tmp}/m", "--prompts-per-step", "100000000"], ["per step"]),
        (["rl", "--model", "{tmp}/m", "--max-new-tokens", "100000000"], ["max_new_tokens"]),
        (["rl", "--model", "{tmp}/m", "--weight-decay", "-1"], ["weight_decay"]),
        (["pretrain", "--output-dir", "{tmp}/p", "--support", "-5"], ["support"]),
        (["study", "--preset", "tiny", "--metric", "bogus", "--output-dir", "{tmp}/s"], ["metric"]),
        (["study", "--preset", "tiny", "--pretrain", "{{episodes: -1}}", "--output-dir", "{tmp}/s"], ["episodes"]),
        (["study", "--preset", "tiny", "--pretrain", "{{output_dir: x}}", "--output-dir", "{tmp}/s"], ["output_dir"]),
        (["study", "--preset", "tiny", "--checkpoints", "1000000000", "--output-dir", "{tmp}/s"], ["checkpoints"]),
    ],
)
def test_bad_command_lines_are_one_line_and_exit_2(args, words, tmp_path, a_file):
    args = [a.format(tmp=tmp_path, file=a_file) for a in args]
    assert_one_line(shiftlab(*args), 2, *words)


def test_success_is_not_reported_when_nothing_was_written(tmp_path, a_file, tiny_text_model):
    result = shiftlab("build-model", "--size", "tiny", "--out", a_file)
    assert "built" not in result.stdout and Path(a_file).read_text() == "not a directory"
    result = shiftlab("build-model", "--size", "tiny", "--kind", "lm", "--out", tiny_text_model)
    assert_one_line(result, 2, "already holds a model")
    assert "built" not in result.stdout


def test_virl_check_decodes_the_panoramas(tmp_path):
    out = tmp_path / "routes"
    assert shiftlab("virl-export", "--out", str(out), "--routes", "1", "--pano-width", "128",
                    "--lengths", "mini").returncode == 0
    assert shiftlab("virl-check", str(out)).returncode == 0
    panoramas = sorted((out / "street_views").glob("*.jpg"))
    for path in panoramas:
        path.write_bytes(os.urandom(2000))
    assert_one_line(shiftlab("virl-check", str(out)), 2, "unreadable panoramas", panoramas[0].name)
    whole = (out / "street_views")  # a truncated JPEG fails too
    assert whole.is_dir()


def test_disk_full_during_eval_is_exit_1(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json.tmp").symlink_to("/dev/full")  # results are written beside, then renamed
    err = assert_one_line(shiftlab("eval", "--policy", "random", "--tasks", "gp-l", "--episodes", "3",
                                   "--out", str(out), "--quiet"), 1, "No space left on device")
    assert str(out) in err
    assert len((out / "trajectories" / "gp-l.jsonl").read_text().splitlines()) == 3  # the episodes are kept
    assert not (out / "results.json.tmp").exists()  # the failed write cleaned up after itself
    assert shiftlab("eval", "--policy", "random", "--tasks", "gp-l", "--episodes", "3", "--out", str(out),
                    "--quiet").returncode == 0  # and the directory is not spoiled for the rerun


def test_a_write_that_fails_mid_run_is_exit_1_and_keeps_what_was_written(tmp_path):
    import resource

    def small_files():  # writes past 64 kB fail (EFBIG), as a full disk fails them with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "shiftlab", "eval", "--policy", "random", "--tasks", "gp-l",
                             "--episodes", "200", "--out", str(out), "--quiet"], capture_output=True, text=True,
                            timeout=120, env=ENV, preexec_fn=small_files)
    assert_one_line(result, 1, "cannot write", "gp-l.jsonl")
    lines = (out / "trajectories" / "gp-l.jsonl").read_bytes().split(b"\n")
    assert len(lines) > 5 and all(json.loads(line)["task"] == "gp-l" for line in lines[:-1])


def test_resume_skips_lines_that_are_not_records(tmp_path):
    out = str(tmp_path / "eval")
    args = ("eval", "--policy", "random", "--tasks", "gp-l", "--episodes", "4", "--out", out, "--quiet")
    assert shiftlab(*args).returncode == 0
    path = tmp_path / "eval" / "trajectories" / "gp-l.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    del first["episode"]
    path.write_text("\n".join([json.dumps(first), "[1, 2]", '{"episode": "x"}', *lines[1:]]) + "\n")
    before = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert shiftlab(*args).returncode == 0
    assert json.loads((tmp_path / "eval" / "results.json").read_text()) == before  # episode 0 played again


def test_a_corrupt_run_file_is_one_line(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "run.json").write_text("{not json")
    assert_one_line(shiftlab("eval", "--policy", "random", "--tasks", "gp-l", "--episodes", "1", "--out", str(out)),
                    2, "run.json")


def test_a_huge_episode_count_streams(tmp_path):
    """10**12 episodes: memory stays flat while episodes are written; Ctrl-C stops it with one line and
    what it finished stays on disk."""
    out = tmp_path / "eval"
    process = subprocess.Popen([sys.executable, "-m", "shiftlab", "eval", "--policy", "random", "--tasks", "gp-l",
                                "--episodes", str(10**12), "--out", str(out), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    path = out / "trajectories" / "gp-l.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 200_000):
            time.sleep(0.2)
        rss_mb = int(next(line for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                          if line.startswith("VmRSS")).split()[1]) / 1024
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()  # a run that ignores Ctrl-C must not outlive the test
            process.communicate()
            raise
    assert path.stat().st_size >= 200_000 and rss_mb < 400, rss_mb
    assert process.returncode == 130 and err.strip().splitlines()[-1] == "shiftlab: interrupted"
    assert "Traceback" not in err
    assert all(json.loads(line)["task"] == "gp-l" for line in path.read_text().splitlines()[:-1])


@pytest.fixture(scope="module")
def truncated_model(tmp_path_factory):
    pytest.importorskip("transformers")
    from shiftlab.training.base_model import build_base_model

    path = build_base_model(tmp_path_factory.mktemp("model") / "m", kind="lm", size="tiny", seed=0)
    weights = Path(path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return str(path)


def test_a_truncated_model_is_one_line(truncated_model, tmp_path):
    assert_one_line(shiftlab("eval", "--policy", f"hf:{truncated_model}", "--tasks", "gp-l", "--episodes", "1",
                             "--out", str(tmp_path / "e")), 2, "cannot load the model weights", truncated_model)
    assert_one_line(shiftlab("rl", "--model", truncated_model, "--task", "gp-l", "--steps", "1",
                             "--output-dir", str(tmp_path / "rl")), 2, "cannot load the model weights")


def test_debug_shows_the_traceback(truncated_model, tmp_path):
    result = shiftlab("eval", "--policy", f"hf:{truncated_model}", "--tasks", "gp-l", "--episodes", "1",
                      "--out", str(tmp_path / "e"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_verify_reads_a_bounded_answer_from_an_endless_stdin():
    with open("/dev/zero", "rb") as zeros:
        result = subprocess.run([sys.executable, "-m", "shiftlab", "verify", "--cards", "8,3,8,3", "-"], stdin=zeros,
                                capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0 and result.stdout.startswith("illegal_formula -3"), result.stderr


def test_debug_keeps_the_exit_status(tmp_path):
    result = shiftlab("eval", "--tasks", " , ", "--out", str(tmp_path), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("shiftlab eval: error: no task")


def test_nested_json_is_a_line_not_a_recursion_error(tmp_path):
    out = tmp_path / "eval"
    (out / "trajectories").mkdir(parents=True)
    (out / "trajectories" / "gp-l.jsonl").write_text("[" * 100_000 + "\n")
    args = ("eval", "--policy", "random", "--tasks", "gp-l", "--episodes", "2", "--out", str(out), "--quiet")
    assert shiftlab(*args).returncode == 0  # the line is skipped
    (out / "run.json").write_text("[" * 100_000)
    assert_one_line(shiftlab(*args), 2, "run.json")
    config = tmp_path / "deep.yaml"
    config.write_text("a: " + "[" * 20_000)
    assert_one_line(shiftlab("sft", "--config", str(config)), 2, "deep.yaml")


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory):
    pytest.importorskip("transformers")
    from shiftlab.training.base_model import build_base_model

    return str(build_base_model(tmp_path_factory.mktemp("text") / "m", kind="lm", size="tiny", seed=0))


def test_a_text_model_on_an_image_task_is_one_line(tiny_text_model, tmp_path):
    assert_one_line(shiftlab("eval", "--policy", f"hf:{tiny_text_model}", "--tasks", "gp-vl", "--episodes", "1",
                             "--resolution", "64", "--out", str(tmp_path / "e"), "--quiet"), 2, "text-only")
