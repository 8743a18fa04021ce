"""shiftlab's task presets as TRL 1.16 `GRPOTrainer` environments, reward functions and prompt datasets.

    from shiftlab.integrations.trl import environment_factory, prepare_tokenizer, prompt_dataset
    trainer = GRPOTrainer(model, args=GRPOConfig(..., max_tool_calling_iterations=attempt_budget("gp-l")),
                          train_dataset=prompt_dataset("gp-l", 64), processing_class=prepare_tokenizer(tokenizer),
                          environment_factory=environment_factory("gp-l"))

How TRL uses these (read off `trl/trainer/grpo_trainer.py` 1.16): it builds one environment per rollout
(pooled, reused across batches) and calls `reset(**row)` with every column of the dataset row, the prompt
included; the text `reset` returns is appended to the content of the prompt's last message. Every public
method of the environment class other than `reset` and `get_reward` becomes a tool, its schema taken from
its type hints and docstring. The model calls `submit_answer` as a tool; the tool's return is the next
"tool" message; the loop ends when the model answers without a tool call, after
`max_tool_calling_iterations` rounds, or when the conversation reaches `max_completion_length` (that limit
covers the tool messages too). `get_reward()` is then called once per rollout and added as a reward with
weight 1 beside `reward_funcs`.

The dataset's `seed` column fixes the episode, and TRL repeats each row `num_generations` times, so the
answers of a GRPO group meet the same hand or route. Revisions (GP-L) and decision points (V-IRL-L) are
repeated tool calls: after each answer the tool returns what shiftlab's own rollout would send next (the
preset's prompt style's next user message: the feedback and a request to correct, or the next
observation), until the environment ends the episode by itself (solved, or attempts spent).

Text presets only. TRL 1.16 does pass images on for vision-language models (image parts of the prompt
and image blocks in a tool's returned list go to the processor and the training forward pass), but
shiftlab's image observations are arrays and nothing here has been run through a VLM, so image presets
raise ValueError.

This module is generic: it knows the `Task` protocol, not any task. It never evaluates model text; answers
are untrusted strings bounded like the rollout bounds them, and reach only the task's verifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from datasets import Dataset
from trl.chat_template_utils import add_response_schema, supports_tool_calling

from shiftlab.integrations.episode import EnvSession, EpisodeSpec
from shiftlab.messages import Message, text_of
from shiftlab.models.builders import CHAT_TEMPLATE
from shiftlab.rollout import MAX_ANSWER_CHARS, bounded_response
from shiftlab.task import TaskPreset, get_preset, ood_presets

TOOL = "submit_answer"
# The seeds shiftlab itself uses: RL training draws episode k with env seed 1_000_000 + k (RLConfig's
# data_seed), evaluation plays episode i with seed i. Datasets made here follow suit, so the two never meet.
TRAIN_SEED = 1_000_000
EVAL_SEED = 0
# A tool message is read back by the model: the verifier's word, or the next observation, not an echo of a
# huge answer.
MAX_RESULT_CHARS = 4_000
SYSTEM_PROMPT = (f"You are solving a task. Work out your answer, then submit it by calling the {TOOL} tool with "
                 f"your complete answer, in the format the task asks for. The tool replies with the verifier's "
                 f"feedback or the next step of the task; call it again when it asks for another answer.")
USER_LEAD = "Here is the task.\n\n"  # reset's observation is appended to this, the last prompt message
Rewards = Literal["per_attempt", "outcome"]
REWARDS = ("per_attempt", "outcome")


# --- The environment ----------------------------------------------------------------------------------------

def _text_preset(name: str) -> TaskPreset:
    """The preset `name`, checked to show text: its first turn, reset once, holds no image."""
    preset = get_preset(name)
    env = preset.make_env()
    try:
        observation, info = env.reset(seed=0)
        messages = preset.make_prompt().first_turn(observation, info)
    finally:
        env.close()
    if any(isinstance(m["content"], list) and any(p.get("type") == "image" for p in m["content"]) for m in messages):
        raise ValueError(f"task {name!r} shows images; the TRL environment takes text presets only (TRL 1.16 "
                         "passes images to VLMs, but shiftlab has not verified image presets through it)")
    return preset


def _messages_text(messages: Sequence[Message]) -> str:
    return "\n\n".join(text_of(m["content"]) for m in messages)


class TaskEnvironment:
    """One episode of a shiftlab task at a time, for TRL's `environment_factory` (make the class with
    `environment_factory(task)`). Public methods besides `reset` and `get_reward` are tools, so
    everything else here is private or a property."""

    task: str = ""
    prompt_style: str | None = None
    rewards: Rewards = "per_attempt"
    evaluation: bool = False
    env_options: Mapping[str, Any] = {}
    max_answer_chars: int = MAX_ANSWER_CHARS

    def __init__(self) -> None:
        self._envs: dict[tuple[str, bool], Any] = {}  # built once per preset: a reset is far cheaper
        self._session: EnvSession | None = None

    def reset(self, seed: int | None = None, task: str | None = None, episode: int | None = None,
              evaluation: bool | None = None, **row: Any) -> str:
        """Start the episode of the row's `seed` (and `task`, `episode`, `evaluation` columns where the
        dataset has them; else the class's task), and return its first observation as text."""
        if seed is None:
            raise ValueError("the dataset needs a `seed` column: the env seed of each row's episode")
        name = task or self.task
        evaluation = self.evaluation if evaluation is None else bool(evaluation)
        key = (name, evaluation)
        if key not in self._envs:
            self._envs[key] = _text_preset(name).make_env(evaluation=evaluation, **self.env_options)
        spec = EpisodeSpec(name, int(seed), int(episode or 0), evaluation, self.prompt_style)
        self._session = EnvSession(spec, env=self._envs[key], max_answer_chars=self.max_answer_chars)
        return _messages_text(self._session.reset())

    def submit_answer(self, answer: str) -> str:
        """Submit your answer to the task. The verifier checks it and replies with its feedback, or with the
        next step of the task; you may answer again until the episode is over.

        Args:
            answer: Your complete answer, written in the format the task asks for.
        """
        session = self._session
        if session is None:
            return "No episode is running."
        if session.done:
            return f"The episode is over ({'solved' if self.success else 'not solved'}); no more answers are taken."
        step = session.step(_as_text(answer))
        if step.done:
            verdict = "solved" if self.success else "not solved"
            return _bounded(f"{step.info.get('feedback', '')}\n\nThe episode is over: {verdict}.".strip())
        reply = text_of(step.messages[-1]["content"])
        return _bounded(f"{reply}\n\n(attempts left: {step.info.get('attempts_left')})")

    def get_reward(self) -> float:
        """The episode's reward: with `rewards="per_attempt"` (shiftlab's RL default) the sum of the
        verifier's rewards over every answer, the episode return shiftlab's GRPO ranks a group by; with
        "outcome", 1.0 for a solved episode, else 0.0. An episode the model never answered is scored as
        one empty answer, so that silence never beats a wrong answer."""
        if self._session is not None and not self._session.rewards and not self._session.done:
            self.submit_answer("")
        if self.rewards == "outcome":
            return float(self.success)
        return float(sum(self.step_rewards))

    @property
    def done(self) -> bool:
        return self._session is not None and self._session.done

    @property
    def success(self) -> bool:
        return self.done and bool(self._session.info.get("success", False))

    @property
    def step_rewards(self) -> list[float]:
        return list(self._session.rewards) if self._session is not None else []


def environment_factory(task: str, *, prompt: str | None = None, rewards: Rewards = "per_attempt",
                        evaluation: bool = False, env_options: Mapping[str, Any] | None = None,
                        max_answer_chars: int = MAX_ANSWER_CHARS) -> type[TaskEnvironment]:
    """A `TaskEnvironment` class for `GRPOTrainer(environment_factory=...)` on the text preset `task`:
    the prompt style `prompt` (None: the preset's own), the reward `get_reward` returns, evaluation options
    (held-out splits) and environment options over the preset's. Rows with a `task` column play that preset
    instead, so one class serves an ID dataset and its OOD evaluation sets. Raises ValueError for an image
    preset, a reward kind or options that do not fit."""
    if rewards not in REWARDS:
        raise ValueError(f"rewards must be one of {REWARDS}, not {rewards!r}")
    if type(max_answer_chars) is not int or max_answer_chars < 1:
        raise ValueError(f"max_answer_chars must be a positive int, not {max_answer_chars!r}")
    preset = _text_preset(task)
    preset.make_prompt(prompt)  # KeyError naming the styles
    options = dict(env_options or {})
    preset.make_env(evaluation=evaluation, **options).close()  # TypeError/ValueError now, not mid-training
    return type("TaskEnvironment", (TaskEnvironment,), {
        "task": task, "prompt_style": prompt, "rewards": rewards, "evaluation": evaluation,
        "env_options": options, "max_answer_chars": max_answer_chars, "__module__": __name__,
    })


def attempt_budget(task: str) -> int:
    """The answers an episode of `task` allows at its first decision (`attempts_left` at reset): for a
    one-point task the whole episode, a fit `max_tool_calling_iterations`. Multi-point tasks allow that
    many per decision and end their episodes themselves; give them a larger cap."""
    preset = get_preset(task)
    env = preset.make_env()
    try:
        return int(env.reset(seed=0)[1]["attempts_left"])
    finally:
        env.close()


def _as_text(value: Any) -> str:
    """A tool argument as the verifier takes it: a parsed JSON value (a model may pass an object where the
    schema says string) goes back to JSON text."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return ""


def _bounded(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " [cut]"


# --- Reward functions (TRL's signature) ----------------------------------------------------------------------

_REPLAY_ENVS: dict[tuple[str, bool], Any] = {}


def _answers(completion: Any) -> list[str]:
    """The answers a completion gave: its `submit_answer` calls in order; without any, its final text
    (plain single-turn GRPO)."""
    if isinstance(completion, str):
        return [completion]
    calls = []
    for message in completion:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function", call) if isinstance(call, Mapping) else {}
            if function.get("name") != TOOL:
                continue
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {}
            calls.append(_as_text(arguments.get("answer", "")) if isinstance(arguments, Mapping) else "")
    if calls:
        return calls
    finals = [m for m in completion if m.get("role") == "assistant"]
    return [text_of(finals[-1].get("content") or "")] if finals else [""]


def _replay(completion: Any, seed: int, task: str, episode: int | None, evaluation: bool) -> tuple[list[float], bool]:
    """Play a completion's answers on a fresh episode of (task, seed): their rewards and whether the
    episode was solved. Deterministic: `reset(seed=)` alone fixes the episode."""
    key = (task, bool(evaluation))
    if key not in _REPLAY_ENVS:
        _REPLAY_ENVS[key] = _text_preset(task).make_env(evaluation=bool(evaluation))
    session = EnvSession(EpisodeSpec(task, int(seed), int(episode or 0), bool(evaluation)), env=_REPLAY_ENVS[key])
    session.reset()
    for answer in _answers(completion):
        if session.step(answer).done:
            break
    return session.rewards, session.done and bool(session.info.get("success", False))


def _rows(completions: Sequence[Any], seed: Sequence[int], task: Sequence[str] | None,
          episode: Sequence[int] | None, evaluation: Sequence[bool] | None):
    n = len(completions)
    for i in range(n):
        yield (completions[i], seed[i], task[i] if task is not None else None,
               episode[i] if episode is not None else None, bool(evaluation[i]) if evaluation is not None else False)


def success_reward(prompts: list, completions: list, completion_ids: list | None = None, *, seed: list[int],
                   task: list[str], episode: list[int] | None = None, evaluation: list[bool] | None = None,
                   **kwargs: Any) -> list[float]:
    """1.0 where the completion's answers (its tool calls, or its text) solve the episode of its row's
    task and seed, else 0.0. Replays the episode through the task's verifier."""
    return [float(_replay(c, s, t, e, v)[1]) for c, s, t, e, v in _rows(completions, seed, task, episode, evaluation)]


def episode_reward(prompts: list, completions: list, completion_ids: list | None = None, *, seed: list[int],
                   task: list[str], episode: list[int] | None = None, evaluation: list[bool] | None = None,
                   **kwargs: Any) -> list[float]:
    """The sum of the verifier's rewards over the completion's answers (one empty answer if it gave none):
    what `get_reward` gives with `rewards="per_attempt"`, for plain single-turn GRPO."""
    out = []
    for c, s, t, e, v in _rows(completions, seed, task, episode, evaluation):
        rewards, _ = _replay(c, s, t, e, v)
        out.append(float(sum(rewards)))
    return out


_MAX_OBJECT_STARTS = 64  # a long run of "{" must not make the scan quadratic


def _json_objects(text: str) -> list[dict]:
    decoder, found, position = json.JSONDecoder(), [], 0
    for _ in range(_MAX_OBJECT_STARTS):
        start = text.find("{", position)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        if isinstance(value, dict):
            found.append(value)
        position = end
    return found


def format_reward(prompts: list, completions: list, completion_ids: list | None = None, *, task: list[str],
                  **kwargs: Any) -> list[float]:
    """1.0 where the completion answered, and its last answer holds a JSON object with the task's answer
    key (`Task.answer_key`; any JSON object for a task without one), else 0.0. The model text is parsed as
    JSON only, never run."""
    out = []
    for completion, name in zip(completions, task, strict=True):
        answers = [a for a in _answers(completion) if a.strip()]
        if not answers:
            out.append(0.0)
            continue
        key = get_preset(name).owner.answer_key
        objects = _json_objects(bounded_response(answers[-1])[0])
        out.append(float(any(key is None or key in o for o in objects)))
    return out


# --- Prompt datasets ------------------------------------------------------------------------------------------

def prompt_dataset(task: str, rows: int, *, seed: int | None = None, evaluation: bool = False, tools: bool = True,
                   prompt: str | None = None) -> Dataset:
    """`rows` episodes of the text preset `task` as a TRL prompt dataset: columns `prompt` (chat messages),
    `task`, `seed` (episode k: env seed `seed + k`; default 1_000_000 for training, 0 with `evaluation`, as
    shiftlab's RL and evaluation use), `episode` (k) and `evaluation` (whether the environment takes the
    preset's evaluation options). With `tools` the prompt is a system message asking for the tool and a
    short user message that `reset` completes with the observation (for `environment_factory`); without,
    the preset's own first turn (plain single-turn GRPO with the reward functions above)."""
    if type(rows) is not int or rows < 1:
        raise ValueError(f"rows must be a positive int, not {rows!r}")
    first = (EVAL_SEED if evaluation else TRAIN_SEED) if seed is None else seed
    if type(first) is not int or first < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    preset = _text_preset(task)
    records = []
    if tools:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_LEAD}]
        records = [{"prompt": messages, "task": task, "seed": first + k, "episode": k, "evaluation": evaluation}
                   for k in range(rows)]
    else:
        env, style = preset.make_env(evaluation=evaluation), preset.make_prompt(prompt)
        try:
            for k in range(rows):
                observation, info = env.reset(seed=first + k, options=preset.owner.reset_options(env, k))
                turn = [{"role": m["role"], "content": text_of(m["content"])} for m in style.first_turn(observation, info)]
                records.append({"prompt": turn, "task": task, "seed": first + k, "episode": k, "evaluation": evaluation})
        finally:
            env.close()
    return Dataset.from_list(records)


def eval_datasets(task: str, rows: int, **options: Any) -> dict[str, Dataset]:
    """Evaluation datasets (`prompt_dataset(..., evaluation=True)`) for `task` and each of its text OOD
    variants, keyed by preset name: TRL's `eval_dataset` takes such a dict and logs each apart."""
    names = [task] + [p.name for p in ood_presets(task)]
    out = {}
    for name in names:
        try:
            out[name] = prompt_dataset(name, rows, evaluation=True, **options)
        except ValueError:
            if name == task:
                raise
    return out


# --- The tokenizer ----------------------------------------------------------------------------------------------

# shiftlab's built models write "ROLE: CONTENT</s>". The tool-calling version writes the tools as a system turn
# and an assistant's tool calls as <tool_call>{"name": ..., "arguments": {...}}</tool_call> after its content;
# a tool's result is a "tool: " turn. Without tools or tool calls it renders exactly as the builder's template.
_TOOLS_INTRO = ("You may call these functions. To call one, write <tool_call>{\"name\": NAME, \"arguments\": "
                "{...}}</tool_call>.")
_TOOL_CALLS = (
    "{% if m['tool_calls'] is defined and m['tool_calls'] %}{% for c in m['tool_calls'] %}"
    "{% set f = c['function'] if c['function'] is defined else c %}"
    "{{ '<tool_call>{\"name\": ' ~ (f['name'] | tojson) ~ ', \"arguments\": ' }}"
    "{% if f['arguments'] is string %}{{ f['arguments'] }}{% else %}{{ f['arguments'] | tojson }}{% endif %}"
    "{{ '}</tool_call>' }}{% endfor %}{% endif %}"
)
_TOOL_LIST = "{% for t in tools %}{{ '\\n' ~ (t | tojson) }}{% endfor %}"
_ASSISTANT = "{% generation %}{{ render(m['content']) ~ eos_token }}{% endgeneration %}"


def _shiftlab_tool_template() -> str:
    if CHAT_TEMPLATE.count("{{ bos_token }}") != 1 or CHAT_TEMPLATE.count(_ASSISTANT) != 1:
        raise RuntimeError("shiftlab's chat template changed; update the tool-calling version in integrations/trl.py")
    tools = "{% if tools %}{{ 'system: ' ~ " + json.dumps(_TOOLS_INTRO) + " }}" + _TOOL_LIST + "{{ eos_token }}{% endif %}"
    assistant = "{% generation %}{{ render(m['content']) }}" + _TOOL_CALLS + "{{ eos_token }}{% endgeneration %}"
    return CHAT_TEMPLATE.replace("{{ bos_token }}", "{{ bos_token }}" + tools).replace(_ASSISTANT, assistant)


def _chatml_tool_template(original: str) -> str:
    """A ChatML template (SmolLM2's renders neither tools nor tool calls) that uses the original for every
    conversation without tools, and for those with them writes Qwen-style <tool_call> JSON."""
    body = (
        "{% if tools %}{{ '<|im_start|>system\\n' }}"
        "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] ~ '\\n\\n' }}{% endif %}"
        "{{ " + json.dumps(_TOOLS_INTRO) + " }}" + _TOOL_LIST + "{{ '<|im_end|>\\n' }}{% endif %}"
        "{% for m in messages %}{% if not (tools and loop.first and m['role'] == 'system') %}"
        "{{ '<|im_start|>' ~ m['role'] ~ '\\n' }}{% if m['content'] is string %}{{ m['content'] }}{% endif %}"
        + _TOOL_CALLS + "{{ '<|im_end|>\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    uses_tools = ("{% set ns = namespace(tools=tools is defined and tools) %}{% for m in messages %}"
                  "{% if m['role'] == 'tool' or (m['tool_calls'] is defined and m['tool_calls']) %}"
                  "{% set ns.tools = true %}{% endif %}{% endfor %}")
    return uses_tools + "{% if ns.tools %}" + body + "{% else %}" + original + "{% endif %}"


def _response_template(anchor: str, end: str) -> dict:
    """A transformers `response_template` (>= 5.13) for tool calls written as <tool_call>JSON</tool_call>."""
    return {
        "defaults": {"role": "assistant"},
        "start_anchor": anchor,
        "fields": {
            "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True,
                           "content": "json", "transform": {"type": "function", "function": "{content}"}},
            "content": {"close_pattern": re.escape(end) + r"\s*", "content": "text"},
        },
    }


def _is_chatml(tokenizer: Any) -> bool:
    template = tokenizer.chat_template
    vocabulary = tokenizer.get_vocab()
    return (isinstance(template, str) and "<|im_start|>" in template and "<|im_start|>" in vocabulary
            and "<|im_end|>" in vocabulary and tokenizer.eos_token == "<|im_end|>")


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Make `tokenizer` ready for TRL's tool calling and return it: TRL 1.16 refuses a chat template that
    cannot render a tool-calling conversation, and parses tool calls with the tokenizer's
    `response_template`. A template that already does both (or that TRL knows a parser for) is kept;
    shiftlab's built models' template and ChatML templates without tools (SmolLM2) get a tool-calling
    version that renders every conversation without tools as before (so `shiftlab eval` sees the same
    prompts), and its parser. Anything else raises ValueError saying what is missing. The change is
    saved with the tokenizer."""
    if hasattr(tokenizer, "image_processor"):
        raise ValueError("a processor (VLM) was given; the TRL environment takes text models and presets only")
    if supports_tool_calling(tokenizer):
        if getattr(tokenizer, "response_template", None) is None and getattr(tokenizer, "response_schema", None) is None:
            try:
                add_response_schema(tokenizer)
            except ValueError:
                raise ValueError("the chat template renders tool calls, but TRL knows no parser for it; set "
                                 "tokenizer.response_template (see transformers' response parsing docs)") from None
        return tokenizer
    if tokenizer.chat_template == CHAT_TEMPLATE:
        tokenizer.chat_template = _shiftlab_tool_template()
        tokenizer.response_template = _response_template("assistant: ", tokenizer.eos_token)
    elif _is_chatml(tokenizer):
        tokenizer.chat_template = _chatml_tool_template(tokenizer.chat_template)
        tokenizer.response_template = _response_template("<|im_start|>assistant\n", "<|im_end|>")
    else:
        raise ValueError("the chat template renders no tool calls and is neither shiftlab's nor ChatML; give the "
                         "tokenizer a tool-calling template and a response_template")
    if not supports_tool_calling(tokenizer):
        raise RuntimeError("the tool-calling template failed TRL's check; this is a bug in integrations/trl.py")
    return tokenizer
