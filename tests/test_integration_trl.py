"""shiftlab's presets as TRL environments: the episode a row's seed fixes, the `submit_answer` tool over
revisions and decision points, rewards checked against the verifier, deterministic datasets, tokenizers
made tool-ready, and GRPOTrainer steps through the tool loop and through the example script, whose model
`shiftlab eval` then scores."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from trl.chat_template_utils import is_chat_template_prefix_preserving, parse_response, supports_tool_calling  # noqa: E402

from shiftlab import cli  # noqa: E402
from shiftlab.integrations.trl import (  # noqa: E402
    MAX_RESULT_CHARS,
    TRAIN_SEED,
    attempt_budget,
    environment_factory,
    episode_reward,
    eval_datasets,
    format_reward,
    prepare_tokenizer,
    prompt_dataset,
    success_reward,
)
from shiftlab.messages import text_of  # noqa: E402
from shiftlab.models.builders import build_causal_lm, byte_tokenizer  # noqa: E402
from shiftlab.task import get_preset  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trl_grpo_gp_l.py"
CONVERSATION = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2, 4, J, 8"},
                {"role": "assistant", "content": "10*2+8-4=24"}, {"role": "user", "content": "again"}]


def episode(task: str, seed: int):
    """An independent copy of the episode: the env after reset, its info and its first-turn text."""
    preset = get_preset(task)
    env = preset.make_env()
    observation, info = env.reset(seed=seed)
    messages = preset.make_prompt().first_turn(observation, info)
    return env, info, "\n\n".join(text_of(m["content"]) for m in messages)


def tool_call(answer: str) -> dict:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "submit_answer", "arguments": {"answer": answer}}}]}


def test_a_rows_seed_fixes_the_episode_and_the_experts_answer_solves_it():
    environment = environment_factory("gp-l")
    first, again, other = environment(), environment(), environment()
    row = {"prompt": [], "task": "gp-l", "episode": 0, "evaluation": False}
    env, info, text = episode("gp-l", 7)
    assert first.reset(seed=7, **row) == again.reset(seed=7, **row) == text
    assert other.reset(seed=8, **row) != text
    expected = env.step(get_preset("gp-l").expert_answer(info))[1]
    reply = first.submit_answer(get_preset("gp-l").expert_answer(info))
    assert "The episode is over: solved." in reply
    assert first.done and first.success and first.get_reward() == expected > 0
    assert "no more answers" in first.submit_answer("1+1") and first.step_rewards == [expected]
    outcome = environment_factory("gp-l", rewards="outcome")()
    outcome.reset(seed=7)
    assert outcome.get_reward() == 0.0  # unanswered: one empty answer, not solved
    outcome.reset(seed=7)
    outcome.submit_answer(get_preset("gp-l").expert_answer(info))
    assert outcome.get_reward() == 1.0
    with pytest.raises(ValueError, match="seed"):
        first.reset(prompt=[])


def test_revisions_return_the_verifiers_feedback_until_the_attempts_run_out():
    preset = get_preset("gp-l")
    env, info, _ = episode("gp-l", 3)
    environment = environment_factory("gp-l")()
    environment.reset(seed=3)
    observation, wrong, _, _, after = env.step("1+1")
    expected = text_of(preset.make_prompt().next_turn([], "1+1", observation, after)[-1]["content"])
    reply = environment.submit_answer("1+1")
    assert reply.startswith(expected) and f"attempts left: {after['attempts_left']}" in reply
    assert not environment.done
    right = env.step(preset.expert_answer(info))[1]
    assert "solved" in environment.submit_answer(preset.expert_answer(info))
    assert environment.get_reward() == wrong + right
    budget = attempt_budget("gp-l")
    environment.reset(seed=3)
    replies = [environment.submit_answer("no") for _ in range(budget + 2)]
    assert "not solved" in replies[budget - 1] and not environment.success
    assert all("no more answers" in r for r in replies[budget:]) and len(environment.step_rewards) == budget
    unanswered = environment_factory("gp-l")()
    unanswered.reset(seed=3)
    assert unanswered.get_reward() == episode("gp-l", 3)[0].step("")[1]


def test_garbage_of_any_size_gets_a_bounded_reply():
    environment = environment_factory("gp-l")()
    for answer in ["", "{" * 200_000, "x" * 3_000_000, "\ud800 lone surrogate", {"formula": "1=24"}, None, 12]:
        environment.reset(seed=1)
        reply = environment.submit_answer(answer)
        assert isinstance(reply, str) and 0 < len(reply) <= MAX_RESULT_CHARS + 10
        assert math.isfinite(environment.get_reward())


def test_each_decision_point_of_a_route_is_a_tool_call():
    preset = get_preset("virl-l")
    env, info, text = episode("virl-l", 5)
    environment = environment_factory("virl-l")()
    assert environment.reset(seed=5) == text
    for _ in range(2):
        answer = preset.expert_answer(info)
        observation, _, terminated, _, info = env.step(answer)
        assert not terminated
        following = text_of(preset.make_prompt().next_turn([], answer, observation, info)[-1]["content"])
        assert environment.submit_answer(answer).startswith(following[:MAX_RESULT_CHARS - 100])
    assert environment.step_rewards and all(r > 0 for r in environment.step_rewards)


def test_image_presets_are_refused():
    with pytest.raises(ValueError, match="images"):
        environment_factory("gp-vl")
    with pytest.raises(ValueError, match="images"):
        prompt_dataset("gp-vl", 2)
    with pytest.raises(ValueError, match="rewards"):
        environment_factory("gp-l", rewards="best")


def test_reward_functions_replay_the_answers_through_the_verifier():
    preset = get_preset("gp-l")
    env, info, _ = episode("gp-l", 11)
    expert = preset.expert_answer(info)
    wrong, right = env.step("1+1")[1], env.step(expert)[1]
    completions = [
        expert,  # plain text, single turn
        [{"role": "assistant", "content": expert}],
        [tool_call("1+1"), {"role": "tool", "name": "submit_answer", "content": "no"}, tool_call(expert)],
        [{"role": "assistant", "content": "I think 24 " + "(" * 5_000}],
        [],
    ]
    rows = {"seed": [11] * 5, "task": ["gp-l"] * 5, "episode": [0] * 5, "evaluation": [False] * 5}
    assert success_reward([None] * 5, completions, None, **rows) == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert format_reward([None] * 5, completions, None, **rows) == [1.0, 1.0, 1.0, 0.0, 0.0]
    scores = episode_reward([None] * 5, completions, None, **rows)
    empty = episode("gp-l", 11)[0].step("")[1]
    assert scores == [right, right, wrong + right, pytest.approx(scores[3]), empty] and scores[3] < 0
    assert success_reward([None], [expert], None, seed=[12], task=["gp-l"]) == [0.0]  # another hand


def test_prompt_datasets_are_deterministic():
    train = prompt_dataset("gp-l", 3)
    assert train.to_list() == prompt_dataset("gp-l", 3).to_list()
    assert train["seed"] == [TRAIN_SEED, TRAIN_SEED + 1, TRAIN_SEED + 2] and train["task"] == ["gp-l"] * 3
    assert train[0]["prompt"][0]["role"] == "system" and "submit_answer" in train[0]["prompt"][0]["content"]
    held = eval_datasets("gp-l", 2)
    assert set(held) == {"gp-l", "gp-l/rule-ood"} and held["gp-l/rule-ood"]["seed"] == [0, 1]
    assert all(held["gp-l"]["evaluation"])
    plain = prompt_dataset("gp-l", 2, seed=5, tools=False)
    assert plain[1]["prompt"][-1]["content"] == episode("gp-l", 6)[2]


def test_tokenizers_become_tool_ready_and_render_plain_chats_as_before():
    tokenizer = byte_tokenizer()
    before = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert not supports_tool_calling(tokenizer)
    prepare_tokenizer(tokenizer)
    assert tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True) == before
    assert supports_tool_calling(tokenizer) and is_chat_template_prefix_preserving(tokenizer)
    tool = environment_factory("gp-l")().submit_answer
    prefix = tokenizer.apply_chat_template(CONVERSATION[:2], tools=[tool], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)
    assert "submit_answer" in tokenizer.decode(prefix)
    ids = tokenizer('<tool_call>{"name": "submit_answer", "arguments": {"answer": "1=24"}}</tool_call></s>',
                    add_special_tokens=False)["input_ids"]
    parsed = parse_response(tokenizer, ids, prefix=prefix, tools=[tool])
    assert parsed["tool_calls"][0]["function"] == {"name": "submit_answer", "arguments": {"answer": "1=24"}}
    assert prepare_tokenizer(tokenizer).chat_template == tokenizer.chat_template  # idempotent

    chatml = byte_tokenizer()  # SmolLM2's template, on a tokenizer that has its tokens
    chatml.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "eos_token": "<|im_end|>"})
    chatml.chat_template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                            "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    before = chatml.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    prepare_tokenizer(chatml)
    assert chatml.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True) == before
    assert supports_tool_calling(chatml) and is_chat_template_prefix_preserving(chatml)
    strange = byte_tokenizer()
    strange.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="tool"):
        prepare_tokenizer(strange)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_causal_lm(tmp_path_factory.mktemp("tiny") / "model", size="tiny", seed=0)


def test_grpo_runs_revisions_through_the_tool_loop(tiny, tmp_path, monkeypatch):
    """Generation is scripted (a random model never calls a tool): a wrong answer, then the expert's, then
    plain text. Everything else is TRL's: parsing the calls, the tools, the tool turns, rewards, the update."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny))
    data = prompt_dataset("gp-l", 1)
    env, info, hand = episode("gp-l", data[0]["seed"])
    expert = get_preset("gp-l").expert_answer(info)
    wrong, right = env.step("1+1")[1], env.step(expert)[1]

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        texts = []
        for ids in prompt_ids:
            seen = tokenizer.decode(ids)
            assert hand in seen  # reset's observation reached the prompt
            turns = seen.count("\ntool: ") + seen.count("</s>tool: ")
            answer = ["1+1", expert][turns] if turns < 2 else None
            call = {"name": "submit_answer", "arguments": {"answer": answer}}
            texts.append(f"<tool_call>{json.dumps(call)}</tool_call></s>" if answer else "done</s>")
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], None

    config = GRPOConfig(output_dir=str(tmp_path / "trl"), max_steps=1, per_device_train_batch_size=2,
                        num_generations=2, max_completion_length=1024, max_tool_calling_iterations=5,
                        beta=0.0, learning_rate=1e-3, use_cpu=True, report_to="none", save_strategy="no",
                        logging_steps=1, disable_tqdm=True, activation_checkpointing=False)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny), args=config, processing_class=tokenizer,
                          reward_funcs=[success_reward], train_dataset=data,
                          environment_factory=environment_factory("gp-l"))
    monkeypatch.setattr(trainer, "_generate_single_turn", scripted)
    trainer.train()
    log = trainer.state.log_history[0]
    assert log["tools/call_frequency"] == 2.0 and log["tools/failure_frequency"] == 0.0
    assert log["rewards/TaskEnvironment/mean"] == wrong + right and log["rewards/success_reward/mean"] == 1.0
    assert all(e.success and e.step_rewards == [wrong, right] for e in trainer.environments)


def test_the_example_trains_saves_and_shiftlab_eval_scores_it(tiny, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("trl_grpo_gp_l", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "run"
    result = example.main(["--model", str(tiny), "--out", str(out), "--steps", "1", "--prompts", "1", "--group", "2",
                           "--max-completion-length", "8"])
    printed = capsys.readouterr().out
    assert "shiftlab eval --policy hf:" in printed and (result["model"] / "model.safetensors").is_file()
    assert result["log"] and "rewards/TaskEnvironment/mean" in result["log"][0]
    command = result["eval_command"]
    assert command[:4] == ["shiftlab", "eval", "--policy", f"hf:{result['model']}"]
    command = [*command[1:], "--quiet", "--max-tokens", "8"]
    assert command[command.index("--tasks") + 1] == "gp-l,gp-l/rule-ood"
    command[command.index("--tasks") + 1] = "gp-l"  # one task and two episodes keep the test short
    command[command.index("--episodes") + 1] = "2"
    assert cli.main(command) == 0
    results = json.loads((out / "eval" / "results.json").read_text())
    assert set(results) == {"gp-l"} and results["gp-l"]["episodes"] == 2
