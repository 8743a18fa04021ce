"""The `shiftlab` command, run as a user would: a real subprocess for the entry point, main() otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from shiftlab.cli import main


@pytest.mark.parametrize("command", [["shiftlab"], [sys.executable, "-m", "shiftlab"]])
def test_entry_points_run(command):
    if command == ["shiftlab"] and shutil.which("shiftlab") is None:
        pytest.skip("console script not installed (package not pip-installed)")
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "play" in result.stdout and "verify" in result.stdout
    bad = subprocess.run([*command, "play", "--task", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown task" in bad.stderr


@pytest.mark.parametrize("command", ["tasks", "play", "verify"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: shiftlab " + command in capsys.readouterr().out


def test_tasks_lists_presets(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "gp-vl/visual-ood" in out and "visual" in out


def test_play_saves_images_and_transcripts(tmp_path, capsys):
    assert main(["play", "--task", "gp-vl,gp-l", "--seed", "3", "--episodes", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4/4 episodes solved" in out
    records = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [(r["task"], r["seed"]) for r in records] == [("gp-vl", 3), ("gp-vl", 4), ("gp-l", 3), ("gp-l", 4)]
    image = np.asarray(Image.open(tmp_path / records[0]["image"]))
    assert image.shape == (448, 448, 3)
    assert all(r["success"] and r["turns"][0]["reward"] == 5.0 for r in records)


def test_play_random_policy_shows_revision_turns(tmp_path, capsys):
    assert main(["play", "--task", "gp-l", "--policy", "random", "--seed", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Your answer was rejected." in out and "--- answer 2" in out


def test_verify_prints_outcome(capsys):
    assert main(["verify", "--cards", "A,3,K,6", '{"formula": "(10-6)*(3*1+3)"}']) == 0
    assert capsys.readouterr().out.startswith("wrong_numbers -2")
    assert main(["verify", "--cards", "8,3,8,3", '"formula": "8/(3-8/3)=24"']) == 0
    assert capsys.readouterr().out.startswith("correct +5")
    assert main(["verify", "--cards", "Q,2,A,K", "--face-values", '"formula": "12*2*1+13-13"']) == 0
    assert "wrong_numbers" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["play", "--task", "gp-nope"], "unknown task 'gp-nope'"),
        (["verify", "--cards", "A,3,X", "1"], "--cards"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_out_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["play", "--task", "gp-l", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["play", "--episodes", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["play", "--seed", "abc"])


def test_play_a_virl_preset(tmp_path, capsys):
    assert main(["play", "--task", "virl-vl/visual-ood", "--seed", "0", "--out", str(tmp_path), "--quiet"]) == 0
    assert "1/1 episodes solved" in capsys.readouterr().out
    record = json.loads((tmp_path / "episodes.jsonl").read_text())
    assert record["start"]["city"] == "new_york" and all(t["reward"] == 1.0 for t in record["turns"])
    assert np.asarray(Image.open(tmp_path / record["image"])).shape == (517, 517, 3)


def test_virl_export_then_check(tmp_path, capsys):
    out = tmp_path / "routes"
    assert main(["virl-export", "--out", str(out), "--routes", "1", "--pano-width", "128", "--lengths", "mini"]) == 0
    assert main(["virl-check", str(out)]) == 0
    assert "valid" in capsys.readouterr().out
    next((out / "street_views").glob("*.jpg")).unlink()
    assert main(["virl-check", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "panoramas missing" in err and len(err.splitlines()) == 1
    assert main(["virl-export", "--out", str(tmp_path / "x"), "--city", "atlantis"]) == 2
