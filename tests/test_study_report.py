"""The study report: files, plots, numbers in the tables, HTML escaping, and findings that follow the numbers."""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from shiftlab.study.report import estimate, summary_lines, write_report  # noqa: E402

ID, OOD = "gp-l", "gp-l/rule-ood"


def metrics(p: float, se: float | None = 0.06, episodes: int = 64, **extra) -> dict:
    out = {"episodes": episodes, "success_rate": p, "mean_reward": 2 * p - 1, **extra}
    if se is not None:
        out["success_stderr"] = se
    return out


def point(step: int, flops: float, id_rate: float, ood_rate: float, se: float = 0.06) -> dict:
    return {"step": step, "flops": flops, "eval": {ID: metrics(id_rate, se), OOD: metrics(ood_rate, se)}}


def make_results() -> dict:
    return {
        "preset": "quickstart", "task": ID, "model": "tiny/model",
        "eval_tasks": [ID, OOD], "shifts": {ID: "id", OOD: "rule"}, "metric": "success_rate",
        "base": {"eval": {ID: metrics(0.05, 0.027), OOD: metrics(0.02, 0.018)}},
        "init": {"flops": 2e12, "eval": {ID: metrics(0.42, 0.062), OOD: metrics(0.30, 0.057)}},
        "branches": {
            "sft": [point(10, 4e12, 0.50, 0.28), point(20, 6e12, 0.61, 0.25), point(30, 8e12, 0.71, 0.29)],
            "rl": [point(2, 4e12, 0.48, 0.36), point(4, 6e12, 0.57, 0.45), point(6, 8e12, 0.66, 0.55)],
        },
        "config": {"task": ID, "rl": {"lr": 1e-6, "group": 8}},
        "seeds": {"seed": 0}, "versions": {"shiftlab": "0.1.0"}, "machine": {"cpus": 2},
        "timing": {"init": 12.5, "rl": 30.0, "sft": 20.0},
        "started": "2025-01-01T10:00:00", "finished": "2025-01-01T10:01:05",
    }


def line_for(lines: list[str], start: str) -> str:
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_write_report_files_plots_and_tables(tmp_path):
    results = make_results()
    paths = write_report(results, tmp_path / "report")
    out = tmp_path / "report"
    assert paths["markdown"] == out / "report.md" and paths["html"] == out / "report.html"
    assert paths["json"] == out / "results.json"
    assert [p.name for p in paths["plots"]] == ["gp-l.png", "gp-l_rule-ood.png"]
    for path in [paths["markdown"], paths["html"], paths["json"], *paths["plots"]]:
        assert path.is_file() and path.stat().st_size > 0
    for plot in paths["plots"]:
        with Image.open(plot) as image:
            image.verify()
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0
    assert json.loads(paths["json"].read_text()) == results

    md = paths["markdown"].read_text()
    assert md.startswith("# Study report: quickstart — gp-l")
    # Final table: base, SFT init, last checkpoints, with compute in GFLOPs.
    assert "| base | 5.0% ± 2.7 | 2.0% ± 1.8 | – |" in md
    assert "| SFT init | 42.0% ± 6.2 | 30.0% ± 5.7 | 2,000 |" in md
    assert "| SFT (last) | 71.0% ± 6.0 | 29.0% ± 6.0 | 8,000 |" in md
    assert "| RL (last) | 66.0% ± 6.0 | 55.0% ± 6.0 | 8,000 |" in md
    # Per-checkpoint tables: every checkpoint of each branch.
    for name in ("sft", "rl"):
        for p in results["branches"][name]:
            cells = [f"{100 * p['eval'][t]['success_rate']:.1f}% ± 6.0" for t in (ID, OOD)]
            assert f"| {p['step']} | {p['flops'] / 1e9:,.0f} | {cells[0]} | {cells[1]} |" in md
    assert "![" in md and "(plots/gp-l_rule-ood.png)" in md
    assert "lr: 1.0e-06" in md  # config as YAML
    assert "| rl | 30.0 | 0:00:30 |" in md and "wall clock 0:01:05" in md
    for line in summary_lines(results):
        assert f"- {line}" in md

    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "<script" not in page and "http" not in page.split("</style>")[0]


@pytest.mark.parametrize(("low", "high", "scale"), [(22.2e12, 29.2e12, "linear"), (2e12, 8e13, "log")])
def test_compute_axis_has_labelled_ticks_over_any_range(low, high, scale):
    from shiftlab.study.report import _figure

    results = make_results()
    results["init"]["flops"] = low
    for points in results["branches"].values():
        for i, p in enumerate(points, 1):
            p["flops"] = low + (high - low) * i / len(points)
    ax = _figure(results, ID, 0).axes[0]
    ax.figure.canvas.draw()
    low_g, high_g = ax.get_xlim()
    ticks = ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
    labelled = [t.label1.get_text() for t in ticks if low_g <= t.get_loc() <= high_g and t.label1.get_text()]
    assert len(labelled) >= 2, labelled
    assert ax.get_xscale() == scale


def test_html_escapes_task_names_and_config(tmp_path):
    results = make_results()
    bad = "gp-l/<script>alert(1)</script>"
    results["eval_tasks"] = [ID, bad]
    results["shifts"] = {ID: "id", bad: "rule"}
    for holder in [results["base"], results["init"], *results["branches"]["sft"], *results["branches"]["rl"]]:
        holder["eval"][bad] = holder["eval"].pop(OOD)
    results["config"]["note"] = "<script>x()</script>"
    paths = write_report(results, tmp_path)
    page = paths["html"].read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;x()&lt;/script&gt;" in page
    assert len(paths["plots"]) == 2 and all(p.parent == tmp_path / "plots" for p in paths["plots"])
    assert "/" not in paths["plots"][1].name and "<" not in paths["plots"][1].name


def test_summary_clear_gain_and_within_noise():
    results = make_results()
    lines = summary_lines(results)
    # SFT on ID: 42% -> 71%, +29.0 pp, combined SE sqrt(6.2^2 + 6^2) = 8.6: beyond 2 SE.
    sft_id = line_for(lines, "Continued SFT on gp-l (ID)")
    assert "+29.0 pp ± 8.6" in sft_id and "a clear gain" in sft_id
    # SFT on OOD: 30% -> 29%, -1.0 pp: within noise.
    sft_ood = line_for(lines, "Continued SFT on gp-l/rule-ood")
    assert "-1.0 pp ± 8.3" in sft_ood and "within noise" in sft_ood
    # A large drop, small errors.
    results["branches"]["rl"][-1]["eval"][ID] = metrics(0.10, 0.02)
    rl_id = line_for(summary_lines(results), "RL on gp-l (ID)")
    assert "-32.0 pp" in rl_id and "a clear drop" in rl_id


def test_rl_vs_sft_comparison_follows_the_numbers():
    results = make_results()
    line = line_for(summary_lines(results), "RL vs SFT on gp-l/rule-ood")
    assert "RL 55.0% ± 6.0 vs SFT 29.0% ± 6.0" in line
    assert "RL is higher by 26.0 pp ± 8.5, beyond 2 SE" in line and "RL generalizes better than SFT" in line

    swapped = copy.deepcopy(results)
    sft_last, rl_last = swapped["branches"]["sft"][-1]["eval"], swapped["branches"]["rl"][-1]["eval"]
    sft_last[OOD], rl_last[OOD] = rl_last[OOD], sft_last[OOD]
    line = line_for(summary_lines(swapped), "RL vs SFT on gp-l/rule-ood")
    assert "SFT is higher by 26.0 pp ± 8.5, beyond 2 SE" in line and "SFT generalizes better than RL" in line
    assert "RL is higher" not in line

    close = copy.deepcopy(results)
    close["branches"]["sft"][-1]["eval"][OOD] = metrics(0.52)
    line = line_for(summary_lines(close), "RL vs SFT on gp-l/rule-ood")
    assert "RL is higher by 3.0 pp" in line and "no clear difference" in line


def test_base_comparison_and_missing_base(tmp_path):
    results = make_results()
    line = line_for(summary_lines(results), "SFT init vs base model")
    assert "clearly above the base model" in line
    results["base"]["eval"][ID] = metrics(0.40, 0.06)
    line = line_for(summary_lines(results), "SFT init vs base model")
    assert "not clearly above the base model" in line

    del results["base"]
    assert not any(line.startswith("SFT init vs base") for line in summary_lines(results))
    paths = write_report(results, tmp_path)
    md = paths["markdown"].read_text()
    assert "| base |" not in md and "| SFT init | 42.0% ± 6.2 | 30.0% ± 5.7 | 2,000 |" in md


def test_stderr_fallback_from_episodes(tmp_path):
    results = make_results()
    results["metric"] = "step_accuracy"
    holders = [results["base"], results["init"], *results["branches"]["sft"], *results["branches"]["rl"]]
    for holder in holders:
        for m in holder["eval"].values():
            m["step_accuracy"] = m["success_rate"]  # no step_accuracy stderr anywhere
    est = estimate(results["init"]["eval"][ID], "step_accuracy")
    assert est.se_source == "binomial" and est.se == pytest.approx((0.42 * 0.58 / 64) ** 0.5)
    assert estimate({"episodes": 10, "step_accuracy": 0.5, "step_accuracy_stderr": 0.01}, "step_accuracy").se == 0.01
    assert estimate({"episodes": 10}, "step_accuracy") is None
    assert estimate({"mean_reward": 3.0}, "mean_reward").se is None  # not a rate: no binomial error invented

    lines = summary_lines(results)
    assert any(line.startswith("Note:") and "binomial" in line and "episodes" in line for line in lines)
    md = write_report(results, tmp_path)["markdown"].read_text()
    se = 100 * (0.42 * 0.58 / 64) ** 0.5
    assert f"| SFT init | 42.0% ± {se:.1f} |" in md and "binomial" in md


def test_identical_inputs_give_identical_files(tmp_path):
    results = make_results()
    a, b = write_report(results, tmp_path / "a"), write_report(results, tmp_path / "b")
    for key in ("markdown", "html", "json"):
        assert a[key].read_bytes() == b[key].read_bytes()
    assert [p.read_bytes() for p in a["plots"]] == [p.read_bytes() for p in b["plots"]]
