"""The task registry and the walls around it: a task from outside arrives through `register_task`
alone and runs through rollout and evaluation with its own metrics; the generic layers name no task,
info key or environment id; shiftlab's import graph has no cycle; imports sit at the top of modules
except for the heavy optional extras, which the CLI never loads."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import toy_task

from shiftlab.evaluation import evaluate
from shiftlab.policies import ExpertPolicy, RandomPolicy
from shiftlab.task import (
    Task,
    TaskPreset,
    get_preset,
    get_task,
    list_presets,
    list_tasks,
    register_task,
    report_metrics,
    unregister_task,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "shiftlab"
GENERIC = ["rollout.py", "evaluation.py", "metrics.py", "play.py", "task.py", "messages.py", "policies", "models",
           "training", "study", "integrations"]
# What only a task may know: its package, environment id, info keys, options and metric names.
TASK_WORDS = ("general_points", "GeneralPoints", "virl", "VIRL", "Virl", "shiftlab/", "cards_correct",
              "step_index", "city", "correct_action", "face_cards", "num_cards", "suit", "route",
              "recognition", "step_accuracy", "formula")


@pytest.fixture
def toy():
    with toy_task.registered() as preset:
        yield preset


def test_an_outside_task_runs_through_rollout_and_evaluation_with_its_metrics(toy, tmp_path):
    assert get_preset(toy).owner is get_task("toy-digits")
    results = evaluate([toy], RandomPolicy(0), 4, tmp_path)
    assert results[toy]["episodes"] == 4 and "mean_first_share" in results[toy]
    assert json.loads((tmp_path / "results.json").read_text())[toy] == results[toy]
    assert "mean first share" in (tmp_path / "results.md").read_text()
    assert evaluate([toy], ExpertPolicy(), 2, tmp_path / "expert")[toy]["success_rate"] == 1.0


def test_unregistering_removes_the_task_and_its_presets(toy):
    unregister_task("toy-digits")
    assert toy not in {p.name for p in list_presets()}
    with pytest.raises(KeyError, match="unknown task"):
        get_preset(toy)
    register_task(toy_task.Digits())  # for the fixture to remove again


def test_registration_refuses_clashes_and_foreign_presets():
    class Clash(Task):
        name = "clash"
        presets = (TaskPreset("gp-l", "clash", {}, "id", ""),)

    class Foreign(Task):
        name = "foreign"
        presets = (TaskPreset("foreign/x", "general-points", {}, "id", ""),)

    with pytest.raises(ValueError, match="'gp-l' is already registered"):
        register_task(Clash())
    with pytest.raises(ValueError, match="belongs to task 'general-points'"):
        register_task(Foreign())
    assert {t.name for t in list_tasks()} >= {"general-points", "virl"}
    assert "clash" not in {t.name for t in list_tasks()}


def test_report_metrics_come_from_the_tasks():
    metrics = report_metrics()
    assert metrics[:2] == ("success_rate", "mean_reward")
    for task in list_tasks():
        assert set(task.report_metrics) <= set(metrics)


def _generic_files() -> list[Path]:
    files = []
    for name in GENERIC:
        path = SRC / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _code_words(tree: ast.AST) -> list[tuple[int, str]]:
    """Identifiers, imported modules and string constants, docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom):
            words.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Import):
            words += [(node.lineno, alias.name) for alias in node.names]
    return words


def test_generic_layers_name_no_task_info_key_or_environment():
    found = []
    for path in _generic_files():
        for line, word in _code_words(ast.parse(path.read_text(encoding="utf-8"))):
            hits = [w for w in TASK_WORDS if w in word.replace("suite", "")]  # a suite of studies is no card suit
            if hits or word.startswith("shiftlab.tasks"):
                found.append(f"{path.relative_to(SRC)}:{line}: {word!r}")
    assert not found, "task knowledge in generic code:\n" + "\n".join(found)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The shiftlab modules a file imports, wherever the import sits (see `_targets`)."""
    nodes = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return {target for node in nodes for target in _targets(node, path, modules)} & modules


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle_between_modules_or_rooms():
    """Rooms are the top-level modules and packages (models, policies, training, tasks, ...); the root
    package's own __init__ only registers the tasks and is left out."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))

    def room(module: str) -> str:
        return ".".join(module.split(".")[:2])

    rooms: dict[str, set[str]] = {room(m): set() for m in graph if m != "shiftlab"}
    for module, targets in graph.items():
        if module != "shiftlab":
            rooms[room(module)] |= {room(t) for t in targets if room(t) != room(module) and t != "shiftlab"}
    assert _cycle(rooms) is None, " -> ".join(_cycle(rooms))
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


# The heavy optional extras: the `hf`, `train`, `vllm` and `verifiers` extras of pyproject.toml and what they bring.
HEAVY = frozenset({"torch", "transformers", "trl", "peft", "datasets", "accelerate", "matplotlib", "tokenizers",
                   "safetensors", "tensorboard", "scipy", "vllm", "verifiers"})
# A base dependency kept like them inside the one function that uses it (OpenAIPolicy): importing it takes
# longer than the rest of the CLI together.
SLOW = frozenset({"openai"})


def test_the_cli_loads_no_heavy_extra():
    code = ("import shiftlab.cli, sys; shiftlab.cli.build_parser(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY | SLOW)!r}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC.parent), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"`import shiftlab.cli` loads {run.stdout.strip()}"


def _split_imports(tree: ast.AST) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """The imports that run when the module loads, and those inside a function body."""
    top: list[ast.stmt] = []
    inner: list[ast.stmt] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (inner if in_function else top).append(child)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, inner


def _targets(node: ast.stmt, path: Path, modules: set[str]) -> list[str]:
    """The modules an import statement loads: `from package import module` names the module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = _module_name(path).split(".")[: None if path.name == "__init__.py" else -1]
        base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def test_imports_sit_at_the_top_except_heavy_extras():
    """An import inside a function loads a heavy extra, or a shiftlab module that imports one at its top
    (so `import shiftlab` and the CLI stay light and fast), and sits in a module that imports none at its
    top itself (a heavy module imports everything at its top)."""
    paths = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    imports = {m: _split_imports(ast.parse(p.read_text(encoding="utf-8"))) for m, p in paths.items()}
    top = {m: [t for node in imports[m][0] for t in _targets(node, paths[m], set(paths))] for m in paths}
    heavy: set[str] = set()

    def is_heavy(target: str) -> bool:  # the target or a package above it, whose __init__ runs first
        parts = target.split(".")
        return parts[0] in HEAVY | SLOW or any(".".join(parts[:i]) in heavy for i in range(1, len(parts) + 1))

    while grown := {m for m in paths if m not in heavy and any(map(is_heavy, top[m]))}:
        heavy |= grown
    assert {"shiftlab.policies.hf", "shiftlab.training.base_model", "shiftlab.study.pipeline",
            "shiftlab.integrations.trl"} <= heavy
    assert not {"shiftlab", "shiftlab.cli", "shiftlab.training.sft", "shiftlab.study.config",
                "shiftlab.integrations"} & heavy

    found = []
    for module, path in paths.items():
        for node in imports[module][1]:
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            light = [t for t in dict.fromkeys(_targets(node, path, set(paths))) if not is_heavy(t)]
            if module in heavy:
                found.append(f"{where}: the module imports heavy extras at its top; import this there too")
            elif light:
                found.append(f"{where}: {', '.join(light)} imports no heavy extra; import it at the top")
    assert not found, "imports inside functions:\n" + "\n".join(found)
