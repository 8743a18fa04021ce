"""shiftlab's verl glue: the export verl reads (through the CLI, read back with pyarrow), the reward function,
the interaction through a revision episode, and the multi-turn episode logic the agent loop delegates to, all
on the real environments. verl itself is needed by two tests only, each skipped where its verl does not
import (verl needs ray, hydra and tensordict even to import): the interaction config loaded by verl 0.7's
own registry, and the agent loop on verl 0.9.1's real `AgentLoopBase`, driven with a fake server."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from shiftlab.cli import main
from shiftlab.integrations.verl import (
    AGENT_LOOP,
    AGENT_LOOP_CLASS,
    INTERACTION,
    INTERACTION_CLASS,
    EnvSession,
    EpisodeSpec,
    ExportError,
    chat_messages,
    compute_score,
    placeholder_messages,
    play_episode,
)
from shiftlab.integrations.verl_interaction import REAL_BASE, EnvInteraction

PRESETS = ["gp-l", "gp-l/rule-ood", "gp-vl", "virl-l"]
EPISODES = 2
WRONG = "no formula here"
FIELDS = {"score", "acc", "outcome", "feedback", "attempts_left", "point", "turns", "answer_cut", "details"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    base = ["export", "verl", "--tasks", ",".join(PRESETS), "--episodes", str(EPISODES), "--out", str(out), "--quiet"]
    assert main([*base, "--split", "train", "--seed", "0"]) == 0
    assert main([*base, "--split", "test", "--seed", "1000"]) == 0
    return out


def _rows(out, split):
    return pq.read_table(out / f"{split}.parquet").to_pylist()


def _expert(spec: EpisodeSpec, wrong: tuple[str, ...] = ()) -> str:
    """The expert's answer after `wrong` answers, from a replica of the episode."""
    replica = EnvSession(spec)
    replica.reset()
    for answer in wrong:
        replica.step(answer)
    return replica.preset.expert_answer(replica.info)


def test_export_writes_the_rows_verl_reads(exported):
    table = pq.read_table(exported / "train.parquet")
    assert set(table.column_names) == {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"}
    assert str(table.schema.field("prompt").type) == "list<element: struct<role: string, content: string>>"
    assert str(table.schema.field("images").type) == "list<element: struct<bytes: binary>>"
    rows = table.to_pylist()
    assert len(rows) == len(PRESETS) * EPISODES
    assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))  # unique per file
    assert [r["data_source"] for r in rows[::EPISODES]] == [f"shiftlab/{p}" for p in PRESETS]
    for row in rows:
        spec = EpisodeSpec.from_json(row["reward_model"]["ground_truth"])
        info = row["extra_info"]
        assert row["reward_model"]["style"] == "rule" and row["data_source"] == f"shiftlab/{spec.preset}"
        assert (info["split"], info["preset"], info["seed"], spec.evaluation) == ("train", spec.preset, spec.seed, False)
        assert info["ood"] == spec.preset.endswith("-ood") and spec.seed == spec.episode  # seed 0 + i
        assert info["interaction_kwargs"] == {"name": INTERACTION, **spec.as_dict()}
        text = "".join(m["content"] for m in row["prompt"])
        assert text.count("<image>") == len(row["images"]) == (spec.preset == "gp-vl")
        assert row["prompt"][0]["role"] == "user" and len(text) > 100
        # the episode rebuilds to the same first conversation
        assert row["prompt"] == placeholder_messages(EnvSession(spec).reset())[0]
        for image in row["images"]:
            decoded = Image.open(io.BytesIO(image["bytes"]))
            assert decoded.format == "PNG" and decoded.size[0] >= 64
    test_rows = _rows(exported, "test")
    assert {r["extra_info"]["split"] for r in test_rows} == {"test"}
    assert all(EpisodeSpec.from_json(r["reward_model"]["ground_truth"]).evaluation for r in test_rows)
    assert test_rows[0]["extra_info"]["seed"] == 1000


def test_export_writes_configs_and_a_manifest_and_refuses_shared_seeds(exported, capsys):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["verl_version"] == "0.9.1" and manifest["shiftlab_version"]
    assert set(manifest["splits"]) == {"train", "test"}
    test = manifest["splits"]["test"]
    assert test["file"] == "test.parquet" and test["rows"] == len(PRESETS) * EPISODES and test["evaluation"]
    assert [(p["name"], p["data_source"], p["seeds"]) for p in test["presets"]] == [
        (p, f"shiftlab/{p}", [1000, 1000 + EPISODES - 1]) for p in PRESETS]
    assert yaml.safe_load((exported / "agent_loop.yaml").read_text()) == [
        {"name": AGENT_LOOP, "_target_": AGENT_LOOP_CLASS, "max_turns": None}]
    assert yaml.safe_load((exported / "interaction.yaml").read_text()) == {
        "interaction": [{"name": INTERACTION, "class_name": INTERACTION_CLASS, "config": {}}]}
    # test episodes that the train split already holds would be trained on, then evaluated
    assert main(["export", "verl", "--tasks", "gp-l", "--episodes", "5", "--split", "test", "--seed", "1",
                 "--out", str(exported), "--quiet"]) == 2
    assert "overlap the train split's 0..1" in capsys.readouterr().err
    assert main(["export", "verl", "--tasks", "gp-l,no-such-task", "--out", str(exported)]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err


def test_export_seeds_default_to_shiftlabs_own(tmp_path):
    """Train episodes from seed 1,000,000 (where shiftlab's RL draws them), test ones from 0 (where
    `shiftlab eval` plays them), so an exported test split is the episodes shiftlab evaluates."""
    for split in ("train", "test"):
        assert main(["export", "verl", "--tasks", "gp-l", "--episodes", "2", "--split", split, "--out",
                     str(tmp_path), "--quiet"]) == 0
    splits = json.loads((tmp_path / "manifest.json").read_text())["splits"]
    assert splits["train"]["presets"][0]["seeds"] == [1_000_000, 1_000_001]
    assert splits["test"]["presets"][0]["seeds"] == [0, 1]


def test_compute_score_rebuilds_the_episode_and_scores_one_answer(exported):
    rows = _rows(exported, "train")
    for row in rows:
        spec = EpisodeSpec.from_json(row["reward_model"]["ground_truth"])
        args = (row["data_source"], row["reward_model"]["ground_truth"], row["extra_info"])
        right = compute_score(args[0], _expert(spec), *args[1:])
        wrong = compute_score(args[0], WRONG, *args[1:])
        assert set(right) == set(wrong) == FIELDS  # one key set for every task: verl stacks them per batch
        assert right["score"] > 0 > wrong["score"] and wrong["acc"] == 0.0 and wrong["feedback"]
        assert right["turns"] == wrong["turns"] == 1 and right["answer_cut"] == 0.0
        if spec.preset.startswith("gp-"):  # one decision: the right answer ends the episode in success
            assert right["acc"] == 1.0 and right["outcome"] == "correct"
    gp = rows[0]
    with pytest.raises(ExportError, match="does not match"):
        compute_score("shiftlab/gp-vl", "x", gp["reward_model"]["ground_truth"], {})
    with pytest.raises(ExportError, match="not a shiftlab episode"):
        compute_score("shiftlab/gp-l", "x", "{not json", {})
    with pytest.raises(ExportError, match="unknown task"):
        compute_score("shiftlab/nope", "x", json.dumps({"preset": "nope", "seed": 0}), {})
    # the multi-turn path of verl <= 0.7: the interaction's turn scores, summed
    assert compute_score("shiftlab/gp-l", "ignored", gp["reward_model"]["ground_truth"],
                         {"turn_scores": [-3.0, 5.0]})["score"] == 2.0


def test_compute_score_takes_any_text_in_bounded_time(exported):
    row = _rows(exported, "train")[0]
    args = (row["data_source"], row["reward_model"]["ground_truth"])
    start = time.perf_counter()
    for answer in ("(" * 5_000_000, "9" * 5_000_000, '{"formula": "' + "1+" * 2_000_000 + '1"}', None, "\ud800"):
        result = compute_score(args[0], answer, args[1], {})
        assert result["acc"] == 0.0 and result["score"] < 0
    assert time.perf_counter() - start < 10
    assert compute_score(args[0], "(" * 5_000_000, args[1], {})["answer_cut"] == 1.0


def test_the_interaction_plays_a_revision_episode(exported):
    row = _rows(exported, "train")[0]  # gp-l
    kwargs = row["extra_info"]["interaction_kwargs"]
    spec = EpisodeSpec.from_mapping(kwargs)
    interaction = EnvInteraction({"name": INTERACTION})

    async def episode():
        instance = await interaction.start_interaction(None, **kwargs)
        messages = [*row["prompt"], {"role": "assistant", "content": WRONG}]
        first = await interaction.generate_response(instance, messages, **kwargs)
        messages += [{"role": "user", "content": first[1]}, {"role": "assistant", "content": _expert(spec, (WRONG,))}]
        second = await interaction.generate_response(instance, messages, **kwargs)
        score = await interaction.calculate_score(instance)
        await interaction.finalize_interaction(instance)
        return first, second, score

    (stop, reply, reward, extra), (stop2, reply2, reward2, extra2), score = asyncio.run(episode())
    assert not stop and reward < 0 and "formula" in reply and extra["turns"] == 1  # the revision request
    assert stop2 and reward2 > 0 and extra2["acc"] == 1.0 and extra2["turns"] == 2
    assert score == reward + reward2 and not interaction._sessions


def test_verl_loads_the_interaction_from_the_exported_config(exported):
    """verl 0.4-0.7 only (with ray and torch): its own registry reads interaction.yaml, and the class is
    built on its BaseInteraction."""
    registry = pytest.importorskip("verl.interactions.utils.interaction_registry", exc_type=ImportError)
    from verl.interactions.base import BaseInteraction

    interactions = registry.initialize_interactions_from_config(str(exported / "interaction.yaml"))
    assert list(interactions) == [INTERACTION] and isinstance(interactions[INTERACTION], EnvInteraction)
    assert REAL_BASE and isinstance(interactions[INTERACTION], BaseInteraction)


def test_the_interaction_refuses_a_new_image():
    spec = EpisodeSpec("virl-vl", 0)
    interaction = EnvInteraction({"name": INTERACTION})

    async def episode():
        instance = await interaction.start_interaction("one", **spec.as_dict())
        return await interaction.generate_response(instance, [{"role": "assistant", "content": _expert(spec)}])

    with pytest.raises(ValueError, match="use the agent loop"):
        asyncio.run(episode())


def _play(spec: EpisodeSpec, wrong_first: bool, max_turns=None):
    """play_episode with a policy that answers wrongly once, then as the expert; the messages it was sent."""
    session = EnvSession(spec)
    sent: list[list] = []

    async def generate(new):
        sent.append(new)
        if wrong_first and len(sent) == 1:
            return WRONG
        return session.preset.expert_answer(session.info)

    return asyncio.run(play_episode(session, generate, max_turns)), sent


def _has_image(messages) -> bool:
    return any(not isinstance(m["content"], str) and any(p["type"] == "image" for p in m["content"]) for m in messages)


def test_play_episode_revises_until_solved():
    result, sent = _play(EpisodeSpec("gp-l", 3), wrong_first=True)
    assert result.success and len(result.rewards) == 2 and result.rewards[0] < 0 < result.rewards[1]
    assert result.fields["acc"] == 1.0 and result.fields["turns"] == 2 and set(result.fields) == FIELDS
    assert [m["role"] for m in sent[1]] == ["user"] and "formula" in sent[1][0]["content"]  # the feedback only
    capped, _ = _play(EpisodeSpec("gp-l", 3), wrong_first=True, max_turns=1)
    assert not capped.success and capped.rewards == result.rewards[:1]


def test_play_episode_brings_a_new_street_view_each_step():
    result, sent = _play(EpisodeSpec("virl-vl", 0), wrong_first=True)
    assert result.success and result.fields["acc"] == 1.0 and len(result.rewards) > 3
    assert result.score == sum(result.rewards)
    assert _has_image(sent[0]) and not _has_image(sent[1])  # a rejected answer: text feedback only
    assert all(_has_image(new) for new in sent[2:])  # after each correct move: the next observation's image
    chat, images = chat_messages(sent[2])
    assert images and all(isinstance(i, Image.Image) for i in images)
    assert [p["type"] for p in chat[0]["content"]].count("image") == len(images)


def test_the_real_verl_agent_loop_plays_an_episode(exported):
    """verl 0.9.1's own AgentLoopBase and Continuous Token builder, a byte tokenizer, and a fake server that
    answers wrongly once, then as the expert."""
    pytest.importorskip("verl.experimental.agent_loop.agent_loop", exc_type=ImportError)
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.workers.rollout.replica import TokenOutput

    from shiftlab.integrations.verl_agent_loop import EnvAgentLoop
    from shiftlab.models.builders import byte_tokenizer

    tokenizer = byte_tokenizer()
    row = _rows(exported, "train")[0]  # gp-l
    spec = EpisodeSpec.from_json(row["reward_model"]["ground_truth"])
    answers = [WRONG, _expert(spec, (WRONG,))]
    prompts = []

    class Server:
        async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kwargs):
            prompts.append(list(prompt_ids))
            return TokenOutput(token_ids=tokenizer.encode(answers[len(prompts) - 1], add_special_tokens=False))

    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {
        "prompt_length": 8192, "response_length": 8192, "full_determinism": False,
        "multi_turn": {"max_assistant_turns": None}}}, "data": {}})

    async def run() -> AgentLoopOutput:
        loop = EnvAgentLoop(trainer_config=DictConfigWrap(config), server_manager=Server(), tokenizer=tokenizer,
                            processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                            name=AGENT_LOOP, max_turns=None)
        return await loop.run({"temperature": 1.0}, raw_prompt=row["prompt"], **{k: row[k] for k in
                              ("data_source", "reward_model", "extra_info")})

    output = asyncio.run(run())
    assert len(prompts) == 2 and prompts[1][: len(prompts[0])] == prompts[0]  # one growing sequence
    assert output.reward_score == sum(output.extra_fields["turn_scores"]) and len(output.extra_fields["turn_scores"]) == 2
    assert output.extra_fields["reward_extra_info"]["acc"] == 1.0 and set(output.extra_fields["reward_extra_info"]) == FIELDS
    assert len(output.response_ids) == len(output.response_mask)
    answer_tokens = sum(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers)
    assert sum(output.response_mask) == answer_tokens and 0 in output.response_mask  # the feedback is masked out
    assert "formula" in tokenizer.decode([t for t, m in zip(output.response_ids, output.response_mask, strict=True) if not m])
