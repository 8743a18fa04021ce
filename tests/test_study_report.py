"""The study report: the statistics against known values, files, plots, tables, the tidy CSV, HTML
escaping, findings that quote their paired tests, older results without per-episode outcomes, and the
suite report over several studies."""

from __future__ import annotations

import copy
import csv
import json
import time

import pytest
from PIL import Image

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")

from shiftlab.statistics import mcnemar_exact, paired_difference, wilson_interval  # noqa: E402
from shiftlab.study.numbers import estimate, p_text  # noqa: E402
from shiftlab.study.report import (  # noqa: E402
    CSV_COLUMNS,
    suite_summary_lines,
    summary_lines,
    write_report,
    write_suite_report,
)

ID, OOD = "gp-l", "gp-l/rule-ood"
N = 64
SEEDS = ("0", "1", "2")


def outcome(k: int, offset: int = 0, n: int = N) -> list[int]:
    """k successes out of n, on the episodes offset, offset + 1, ... (wrapping): nested sets of solved
    episodes, as a stronger model solves what a weaker one does and more."""
    solved = {(offset + i) % n for i in range(k)}
    return [int(i in solved) for i in range(n)]


def metrics(k: int, offset: int = 0, n: int = N, **extra) -> dict:
    p = k / n
    return {"episodes": n, "success_rate": p, "success_stderr": (p * (1 - p) / n) ** 0.5, "mean_reward": 2 * p - 1,
            "per_city": {"x": {"success_rate": p}}, **extra, "episode_success": outcome(k, offset, n)}


def branch(ks: dict[str, list[tuple[int, int]]], flops=(4e12, 6e12, 8e12), steps=(10, 20, 30), id_task=ID,
           ood_task=OOD) -> dict:
    """seed -> points; ks[seed] holds (ID successes, OOD successes) per checkpoint."""
    return {seed: [{"step": s, "flops": f, "eval": {id_task: metrics(i, int(seed)), ood_task: metrics(o, int(seed))}}
                   for s, f, (i, o) in zip(steps, flops, points, strict=True)]
            for seed, points in ks.items()}


def make_results(id_task: str = ID, ood_task: str = OOD) -> dict:
    return {
        "preset": "quickstart", "task": id_task, "env": {"num_cards": 4}, "model": "tiny/model",
        "eval_tasks": [id_task, ood_task], "shifts": {id_task: "id", ood_task: "rule"}, "metric": "success_rate",
        "training_seeds": [0, 1, 2],
        "base": {"eval": {id_task: metrics(3), ood_task: metrics(1)}},
        "init": {"flops": 2e12, "eval": {id_task: metrics(27), ood_task: metrics(19)}},
        "branches": {
            # SFT: ID up from 27 to ~45 of 64; OOD flat around the init's 19.
            "sft": branch({"0": [(32, 18), (40, 19), (45, 18)], "1": [(33, 19), (41, 18), (46, 19)],
                           "2": [(31, 20), (39, 20), (44, 20)]}, id_task=id_task, ood_task=ood_task),
            # RL: ID up to ~42, OOD up from 19 to ~35.
            "rl": branch({"0": [(30, 24), (36, 30), (42, 35)], "1": [(31, 25), (37, 31), (43, 36)],
                          "2": [(29, 23), (35, 29), (41, 34)]}, id_task=id_task, ood_task=ood_task),
        },
        "config": {"task": id_task, "rl": {"lr": 1e-6, "group": 8}},
        "seed_ranges": {"evaluation (env seed of episode k)": 0, "RL episodes": 2_000_000},
        "versions": {"shiftlab": "0.1.0"}, "machine": {"cpus": 2},
        "timing": {"init": 12.5, "rl": 30.0, "sft": 20.0},
        "started": "2025-01-01T10:00:00", "finished": "2025-01-01T10:01:05",
    }


def holders(results: dict) -> list[dict]:
    return [results["base"], results["init"],
            *(p for runs in results["branches"].values() for points in runs.values() for p in points)]


def line_for(lines: list[str], start: str, contains: str = "") -> str:
    found = [line for line in lines if line.startswith(start) and contains in line]
    assert len(found) == 1, (start, contains, lines)
    return found[0]


def lasts(results: dict, name: str, task: str) -> list[list[int]]:
    return [points[-1]["eval"][task]["episode_success"] for points in results["branches"][name].values()]


# ------------------------------------------------------------------------------------------ statistics


def test_wilson_interval_known_values():
    low, high = wilson_interval(10, 20)
    assert (round(low, 4), round(high, 4)) == (0.2993, 0.7007)
    low, high = wilson_interval(0, 20)
    assert low == 0 and 0.15 < high < 0.17  # not a point at 0%
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_mcnemar_exact_on_the_discordant_pairs():
    a = [1] * 10 + [0] * 1 + [1] * 20 + [0] * 9  # 10 only a, 1 only b, 29 concordant
    b = [0] * 10 + [1] * 1 + [1] * 20 + [0] * 9
    test = mcnemar_exact(a, b)
    assert (test.n10, test.n01) == (10, 1) and test.p == pytest.approx(0.01171875)
    assert mcnemar_exact(b, a).p == pytest.approx(0.01171875) and mcnemar_exact(b, a).n10 == 1
    same = mcnemar_exact(a, a)
    assert (same.n10, same.n01, same.p) == (0, 0, 1.0)
    with pytest.raises(ValueError):
        mcnemar_exact(a, b[:-1])


def test_paired_difference_clear_identical_deterministic_and_fast():
    better = [outcome(40, s) for s in range(3)]
    worse = [outcome(24)]
    clear = paired_difference(better, worse, seed=0)
    assert clear.diff == pytest.approx((40 - 24) / N) and clear.p < 0.001
    assert clear.ci_low > 0 and clear.ci_low <= clear.diff <= clear.ci_high
    assert (clear.n_episodes, clear.n_seeds_a, clear.n_seeds_b) == (N, 3, 1)
    assert clear.mean_a == pytest.approx(40 / N) and clear.mean_b == pytest.approx(24 / N)
    assert "permutation" in clear.test
    assert paired_difference(better, worse, seed=0) == clear  # the same seed, the same numbers

    same = paired_difference(better, better, seed=3)
    assert same.diff == 0 and same.p > 0.5 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    noisy = paired_difference([outcome(30, 0)], [outcome(30, 20)], seed=0)  # same rate, other episodes
    assert noisy.diff == 0 and noisy.p > 0.5 and noisy.ci_low < 0 < noisy.ci_high
    constant = paired_difference([[1] * 10], [[0] * 10])  # every episode differs the same way
    assert constant.diff == 1 and (constant.ci_low, constant.ci_high) == (1.0, 1.0) and constant.p < 0.01
    assert "exact" in constant.test  # 2**10 sign flips are fewer than the resamples
    with pytest.raises(ValueError):
        paired_difference([outcome(3)], [outcome(3, n=10)])

    started = time.perf_counter()
    for k in range(6):
        paired_difference([outcome(30 + k, s) for s in range(3)], [outcome(28, 5)], seed=k)
    assert time.perf_counter() - started < 3.0  # a few hundred ms on a quiet machine


# --------------------------------------------------------------------------------------------- report


def test_write_report_files_plots_tables_and_csv(tmp_path):
    results = make_results()
    paths = write_report(results, tmp_path / "report")
    out = tmp_path / "report"
    assert paths["markdown"] == out / "report.md" and paths["html"] == out / "report.html"
    assert paths["json"] == out / "results.json" and paths["csv"] == out / "results.csv"
    assert [p.relative_to(out).as_posix() for p in paths["plots"]] == ["plots/sft.png", "plots/rl.png"]
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
    # Final table: base, SFT init, last checkpoints (mean over seeds, pooled Wilson), compute in GFLOPs.
    assert "| base | 4.7% [1.6, 12.9] | 1.6% [0.3, 8.3] | – |" in md
    assert "| SFT init | 42.2% [30.9, 54.4] | 29.7% [19.9, 41.8] | 2,000 |" in md
    low, high = wilson_interval(45 + 46 + 44, 3 * N)
    rl_ood = wilson_interval(35 + 36 + 34, 3 * N)
    assert f"| SFT (last, mean of 3 seeds) | {100 * 135 / 192:.1f}% [{100 * low:.1f}, {100 * high:.1f}] |" in md
    assert f"| {100 * 105 / 192:.1f}% [{100 * rl_ood[0]:.1f}, {100 * rl_ood[1]:.1f}] | 8,000 |" in md
    # Per-checkpoint tables: each checkpoint's mean over seeds, then the seeds' own values.
    assert "| SFT init | 2,000 | 42.2% [30.9, 54.4] | 29.7% [19.9, 41.8] |" in md
    first = wilson_interval(30 + 31 + 29, 3 * N)
    assert (f"| 10 | 4,000 | {100 * 90 / 192:.1f}% [{100 * first[0]:.1f}, {100 * first[1]:.1f}] "
            f"({100 * 30 / N:.1f} / {100 * 31 / N:.1f} / {100 * 29 / N:.1f}) |") in md
    assert "(seeds 0 / 1 / 2)" in md
    assert "![RL branch: success_rate vs training compute](plots/rl.png)" in md and "(plots/sft.png)" in md
    assert "lr: 1.0e-06" in md  # config as YAML
    assert "## Time per stage" in md and "| rl | 30.0 | 0:00:30 |" in md and "wall clock 0:01:05" in md
    assert "| training seeds (one run of each branch per seed) | 0, 1, 2 |" in md
    for line in summary_lines(results):
        assert f"- {line}" in md or line in md

    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "<script" not in page and "http" not in page.split("</style>")[0]
    assert "42.2% [30.9, 54.4]" in page  # the same formatting in both documents

    with paths["csv"].open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    # Four scalars per evaluation (episodes, success_rate, success_stderr, mean_reward; the per-episode list
    # and per_city left out), two tasks, base + init + 2 branches x 3 seeds x 3 checkpoints.
    assert len(rows) == 4 * 2 * (2 + 2 * 3 * 3)
    assert {r["metric"] for r in rows} == {"episodes", "success_rate", "success_stderr", "mean_reward"}
    init = [r for r in rows if r["branch"] == "init" and r["task"] == ID and r["metric"] == "success_rate"]
    assert init == [{"branch": "init", "seed": "", "step": "0", "flops": "2000000000000.0", "task": ID,
                     "metric": "success_rate", "value": "0.421875", "n": "64"}]
    assert {r["flops"] for r in rows if r["branch"] == "base"} == {""}
    rl = [r for r in rows if r["branch"] == "rl" and r["seed"] == "2" and r["step"] == "30" and r["task"] == OOD
          and r["metric"] == "success_rate"]
    assert len(rl) == 1 and float(rl[0]["value"]) == 34 / N


def test_findings_quote_the_paired_tests():
    results = make_results()
    lines = summary_lines(results)
    rl_ood = line_for(lines, "gp-l/rule-ood (OOD, rule shift): RL", "vs SFT init")
    paired = paired_difference(lasts(results, "rl", OOD), [results["init"]["eval"][OOD]["episode_success"]])
    mcnemar = [mcnemar_exact(run, results["init"]["eval"][OOD]["episode_success"]) for run in lasts(results, "rl", OOD)]
    assert rl_ood.startswith(f"gp-l/rule-ood (OOD, rule shift): RL {100 * 105 / 192:.1f}% vs SFT init 29.7%: "
                             f"{100 * paired.diff:+.1f} pp [95% CI {100 * paired.ci_low:+.1f}, {100 * paired.ci_high:+.1f}]")
    assert f"paired permutation test p = {p_text(paired.p)} over 3 seeds x 64 episodes" in rl_ood
    assert f"(exact McNemar per seed: p = {', '.join(p_text(m.p) for m in mcnemar)})" in rl_ood
    assert paired.p < 0.05 and "a clear gain" in rl_ood

    sft_ood = line_for(lines, "gp-l/rule-ood (OOD, rule shift): SFT", "vs SFT init")
    assert "not distinguishable from zero at this sample size" in sft_ood and "clear" not in sft_ood
    sft_id = line_for(lines, "gp-l (ID): SFT", "vs SFT init")
    assert "a clear gain" in sft_id

    rl_sft = line_for(lines, "gp-l/rule-ood (OOD, rule shift): RL", "last checkpoints")
    assert "at the last checkpoints (RL 8,000, SFT 8,000 GFLOPs)" in rl_sft
    assert "over 3 seeds per branch x 64 episodes" in rl_sft and "exact McNemar per seed pair" in rl_sft
    assert "RL is clearly higher" in rl_sft and "Caution" not in rl_sft
    assert any(line.startswith("Note: p is a two-sided paired sign-flip permutation test") for line in lines)

    swapped = copy.deepcopy(results)
    swapped["branches"]["sft"], swapped["branches"]["rl"] = swapped["branches"]["rl"], swapped["branches"]["sft"]
    rl_sft = line_for(summary_lines(swapped), "gp-l/rule-ood (OOD, rule shift): RL", "last checkpoints")
    assert "SFT is clearly higher" in rl_sft and "RL is clearly higher" not in rl_sft
    for points in swapped["branches"]["rl"].values():
        points[-1]["flops"] = 9e12  # 12.5% more than SFT's last checkpoints
    rl_sft = line_for(summary_lines(swapped), "gp-l/rule-ood (OOD, rule shift): RL", "last checkpoints")
    assert "Caution: the two last checkpoints differ in compute by more than 10%" in rl_sft


def test_base_comparison_and_missing_base(tmp_path):
    results = make_results()
    line = line_for(summary_lines(results), "gp-l (ID): SFT init")
    assert "vs base 4.7%" in line and "clearly above the base model" in line and "over 64 episodes" in line
    assert "(exact McNemar: p = " in line
    results["base"]["eval"][ID] = metrics(26, offset=30)
    line = line_for(summary_lines(results), "gp-l (ID): SFT init")
    assert "not distinguishable from the base model" in line

    del results["base"]
    assert not any(line.startswith("gp-l (ID): SFT init") for line in summary_lines(results))
    md = write_report(results, tmp_path)["markdown"].read_text()
    assert "| base |" not in md and "| SFT init | 42.2% [30.9, 54.4] | 29.7% [19.9, 41.8] | 2,000 |" in md


def test_older_results_without_per_episode_outcomes(tmp_path):
    results = make_results()
    for holder in holders(results):
        for m in holder["eval"].values():
            del m["episode_success"]
    lines = summary_lines(results)
    rl_ood = line_for(lines, "gp-l/rule-ood (OOD, rule shift): RL", "vs SFT init")
    assert "unpaired (per-episode outcomes (episode_success) missing for some models)" in rl_ood
    assert "the 95% Wilson intervals do not overlap" in rl_ood and "paired permutation" not in rl_ood
    assert "29.7% [19.9, 41.8]" in rl_ood
    sft_ood = line_for(lines, "gp-l/rule-ood (OOD, rule shift): SFT", "vs SFT init")
    assert "intervals overlap, so this unpaired comparison does not tell them apart" in sft_ood
    assert any(line.startswith("Note: some comparisons are unpaired") for line in lines)

    # The single-seed schema before seeds: a branch is one list of points.
    for name in ("sft", "rl"):
        results["branches"][name] = results["branches"][name]["0"]
    del results["training_seeds"]
    paths = write_report(results, tmp_path)
    md = paths["markdown"].read_text()
    assert "| RL (last, mean of 1 seed) | 65.6% [53.4, 76.1] |" in md and "unpaired" in md
    assert all(p.is_file() for p in paths["plots"])


def test_other_metrics_and_missing_values():
    results = make_results()
    results["metric"] = "step_accuracy"
    for holder in holders(results):
        for m in holder["eval"].values():
            m["step_accuracy"] = m["success_rate"]
    lines = summary_lines(results)
    assert any(line.startswith("Note: step_accuracy is not a count of episodes") for line in lines)
    assert "unpaired" in line_for(lines, "gp-l (ID): RL", "vs SFT init")  # no per-episode step accuracy
    for holder in holders(results):
        for m in holder["eval"].values():
            m["episode_step_accuracy"] = m["episode_success"]
    assert "paired permutation test" in line_for(summary_lines(results), "gp-l (ID): RL", "vs SFT init")

    assert estimate({"episodes": 10, "step_accuracy": 0.5, "step_accuracy_stderr": 0.01}, "step_accuracy").se == 0.01
    assert estimate({"episodes": 10}, "step_accuracy") is None
    results["metric"] = "mean_reward"  # not a rate: mean ± SE, no Wilson interval
    line = line_for(summary_lines(results), "gp-l (ID): RL", "vs SFT init")
    assert "no interval to compare, so not judged" in line
    for holder in holders(results):
        for m in holder["eval"].values():
            m["mean_reward_stderr"] = 0.05
    line = line_for(summary_lines(results), "gp-l (ID): RL", "vs SFT init")
    assert "RL 0.312 ± 0.029 vs SFT init -0.156 ± 0.050: +0.469, unpaired" in line
    assert "normal intervals (±1.96 SE) do not overlap" in line
    results["init"]["eval"][OOD] = {"episodes": 64}
    assert "no mean_reward to compare" in line_for(summary_lines(results), "gp-l/rule-ood (OOD, rule shift): RL",
                                                   "vs SFT init")


def test_html_escapes_task_names_config_and_pretraining(tmp_path):
    results = make_results()
    bad = "gp-l/<script>alert(1)</script>"
    results["eval_tasks"] = [ID, bad]
    results["shifts"] = {ID: "id", bad: "rule"}
    for holder in holders(results):
        holder["eval"][bad] = holder["eval"].pop(OOD)
    results["config"]["note"] = "<script>x()</script>"
    results["branches"]["<b>rl</b>"] = results["branches"].pop("rl")
    results["pretraining"] = {
        "hash": "ab12cd", "cache": "/cache/base-ab12cd", "reused": True, "support": 120,
        "sources": [{"task": "gp-l", "env": {"num_cards": 4}, "episodes": 500, "revisions": 2},
                    {"task": "<i>virl</i>", "env": {}, "episodes": 300, "revisions": 0}],
        "held_out": ["gp-l with face cards as 11, 12, 13 (the rule shift)", "<script>y()</script>"],
    }
    results["leakage"] = {ID: {"episodes": 64, "found_in_training": 0}, bad: {"episodes": 64, "found_in_training": 3}}
    paths = write_report(results, tmp_path)
    page = paths["html"].read_text()
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;x()&lt;/script&gt;" in page
    assert all(p.parent == tmp_path / "plots" for p in paths["plots"])
    assert {p.name for p in paths["plots"]} == {"sft.png", "b_rl_b.png"}

    md = paths["markdown"].read_text()
    assert "## What the base saw" in md and "hash ab12cd, cached at /cache/base-ab12cd" in md
    assert "reused from an earlier run" in md and "Support rows" in md and ": 120." in md
    assert "| gp-l | num_cards=4 | 500 | 2 |" in md
    assert "- gp-l with face cards as 11, 12, 13 (the rule shift)" in md
    assert "- gp-l: 0 of 64 evaluation episodes occur in any training data" in md
    assert any(line.startswith("Caution: 3 of 64 evaluation episodes") for line in summary_lines(results))


@pytest.mark.parametrize(("low", "high", "scale"), [(22.2e12, 29.2e12, "linear"), (2e12, 8e13, "log")])
def test_compute_axis_has_labelled_ticks_over_any_range(low, high, scale):
    from shiftlab.study.plots import branch_figure

    results = make_results()
    results["init"]["flops"] = low
    for runs in results["branches"].values():
        for points in runs.values():
            for i, p in enumerate(points, 1):
                p["flops"] = low + (high - low) * i / len(points)
    ax = branch_figure(results, "rl").axes[0]
    ax.figure.canvas.draw()
    low_g, high_g = ax.get_xlim()
    ticks = ax.xaxis.get_major_ticks() + ax.xaxis.get_minor_ticks()
    labelled = [t.label1.get_text() for t in ticks if low_g <= t.get_loc() <= high_g and t.label1.get_text()]
    assert len(labelled) >= 2, labelled
    assert ax.get_xscale() == scale
    # Per task: a thin line per seed and the bold mean; the legend names each task with its shift.
    assert len(ax.get_lines()) == 2 * (len(SEEDS) + 1) + 2  # + the base model's dotted lines
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gp-l (ID)", "gp-l/rule-ood (rule shift)",
                                                                  "base model"]


def test_identical_inputs_give_identical_files(tmp_path):
    results = make_results()
    a, b = write_report(results, tmp_path / "a"), write_report(results, tmp_path / "b")
    for key in ("markdown", "html", "json", "csv"):
        assert a[key].read_bytes() == b[key].read_bytes()
    assert [p.read_bytes() for p in a["plots"]] == [p.read_bytes() for p in b["plots"]]


# ---------------------------------------------------------------------------------------------- suite


def test_suite_report_puts_the_studies_side_by_side(tmp_path):
    gp = {**make_results(), "report_dir": "gp-l"}
    virl = {**make_results("virl-l", "virl-l/visual-ood"), "report_dir": "virl-l"}
    virl["shifts"]["virl-l/visual-ood"] = "visual"
    virl["timing"] = {"init": 100.0, "rl": 3600.0, "eval-rl": 5.0}
    for runs in virl["branches"].values():  # SFT and RL end level out of distribution
        for seed, points in runs.items():
            points[-1]["eval"]["virl-l/visual-ood"] = metrics(20, int(seed))
    paths = write_suite_report([gp, virl], tmp_path, title="Two tasks")
    md = paths["markdown"].read_text()
    assert md.startswith("# Two tasks")
    assert "| gp-l | gp-l/rule-ood (OOD, rule shift) | 29.7% [19.9, 41.8] |" in md
    assert "| virl-l | virl-l (ID) | 42.2% [30.9, 54.4] |" in md
    assert "| virl-l | virl-l/visual-ood (OOD, visual shift) | 29.7% [19.9, 41.8] |" in md
    assert "### gp-l (preset quickstart)" in md and "### virl-l (preset quickstart)" in md
    for line in summary_lines(virl):
        assert line in md
    assert md.count("Note: p is a two-sided paired sign-flip permutation test") == 1  # shared notes once
    assert "[virl-l: report (HTML)](virl-l/report.html)" in md and "(gp-l/report.md)" in md
    assert "| rl | 0:00:30 | 1:00:00 |" in md and "| eval-rl | – | 0:00:05 |" in md

    lines = suite_summary_lines([gp, virl])
    gp_line = line_for(lines, "On gp-l/rule-ood (rule shift, the gp-l study)")
    assert "RL is higher by" in gp_line and "a clear difference by the paired test" in gp_line
    virl_line = line_for(lines, "On virl-l/visual-ood (visual shift, the virl-l study)")
    assert "RL ends at 31.2% and SFT at 31.2%" in virl_line and "level" in virl_line
    assert "Across the 2 OOD tasks, RL is clearly higher on 1, SFT on 0 and neither is clearly higher on the other 1." in lines
    assert " ".join(lines) in md

    with paths["csv"].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 4 * 2 * (2 + 2 * 3 * 3) and {r["task"] for r in rows} == {
        ID, OOD, "virl-l", "virl-l/visual-ood"}
    page = paths["html"].read_text()
    assert '<a href="virl-l/report.html">' in page and "<script" not in page


def test_suite_says_when_the_instrument_cannot_measure_ood_change(tmp_path):
    results = make_results()
    for holder in holders(results):
        holder["eval"][OOD] = metrics(0)
    lines = suite_summary_lines([results])
    assert any("cannot measure OOD change at all" in line for line in lines)
    assert any(line.startswith("Note: the SFT init and every branch's last checkpoint score 0") for line in
               summary_lines(results))
    for points in results["branches"]["rl"].values():
        points[-1]["eval"][OOD] = metrics(5)
    lines = suite_summary_lines([results])
    assert any("cannot measure an OOD loss from the initialisation" in line for line in lines)
