"""Several studies side by side: one per in-distribution task, sharing a cached base where their
pretraining plans agree, with one report over all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from shiftlab.study.config import StudyConfig
from shiftlab.study.pipeline import run_study
from shiftlab.study.report import suite_summary_lines, write_suite_report
from shiftlab.training.config import ConfigError, output_directory


def run_suite(name: str, configs: Sequence[StudyConfig], output_dir: str,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) each study in OUTPUT_DIR/<its preset>, then the suite report in OUTPUT_DIR/report."""
    output = output_directory(output_dir)
    names = [c.preset for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {name!r} names a study twice: {', '.join(names)}")
    for config in configs:
        config.validate()
    studies = []
    for config in configs:
        log(f"[suite {name}] study {config.preset} ({config.task})")
        done = run_study(replace(config, output_dir=str(output / config.preset)), log=log)
        studies.append({**done["results"], "report_dir": str(Path(config.preset) / "report")})
    paths = write_suite_report(studies, output / "report", title=f"Study suite: {name}")
    for line in suite_summary_lines(studies):
        log(f"  {line}")
    log(f"[suite {name}] report: {paths['html']} and {paths['markdown']}")
    return {"paths": paths, "studies": studies}
