"""Expert episodes exported as a Hugging Face dataset for SFT."""

import json

import datasets
import numpy as np
import pytest

from shiftlab.tasks.general_points.formula import parse
from shiftlab.tasks.general_points.verifier import verify
from shiftlab.training.expert_data import RevisionPolicy, Source, build_dataset, episode_rows
from shiftlab.training.pretrain import mixture, support_rows


def _text(message):
    content = message["content"]
    return content if isinstance(content, str) else "".join(p.get("text") or "" for p in content)


def test_text_rows_are_conversations_ending_in_a_correct_expert_answer():
    ds = build_dataset([Source("gp-l", 12)], seed=5)
    assert len(ds) == 12 and "images" not in ds.column_names
    assert ds["seed"] == list(range(5, 17)) and set(ds["task"]) == {"gp-l"}
    for row in ds:
        messages = row["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert isinstance(messages[0]["content"], str) and "Cards:" in messages[0]["content"]
        answer = json.loads(messages[1]["content"])
        values = {"A": 1, "J": 10, "Q": 10, "K": 10}
        numbers = [values.get(c) or int(c) for c in answer["cards"]]
        assert verify(messages[1]["content"], numbers, target=24).success


def test_same_seed_same_rows_and_another_seed_other_rows():
    a = build_dataset([Source("gp-l", 6), Source("virl-l", 2)], seed=1)
    b = build_dataset([Source("gp-l", 6), Source("virl-l", 2)], seed=1)
    c = build_dataset([Source("gp-l", 6), Source("virl-l", 2)], seed=2)
    assert a["messages"] == b["messages"]
    assert a["messages"] != c["messages"]


def test_adding_a_source_leaves_earlier_sources_unchanged():
    one = build_dataset([Source("gp-l", 4)], seed=3)
    two = build_dataset([Source("gp-l", 4), Source("gp-l/rule-ood", 4)], seed=3)
    assert two["messages"][:4] == one["messages"]


def test_virl_rows_are_one_per_decision_point():
    ds = build_dataset([Source("virl-l", 2)], seed=0)
    for episode in (0, 1):
        points = [r["point"] for r in ds if r["episode"] == episode]
        assert points == list(range(len(points))) and len(points) > 3


def test_revisions_put_wrong_answers_and_feedback_before_the_expert_answer():
    rows = list(episode_rows(Source("gp-l", 20, revisions=2), seed=0))
    long = [r for r in rows if len(r["messages"]) == 6]
    assert len(long) >= 15  # a random guess is rarely right
    for row in long:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
        assert "incorrect" in _text(row["messages"][2]).lower() or "not" in _text(row["messages"][2]).lower()
    # V-IRL's budget is 2 answers per point by default; the exporter makes room for the correction.
    virl = list(episode_rows(Source("virl-l", 2, revisions=2), seed=0))
    assert any(len(r["messages"]) == 6 for r in virl)


def test_revision_policy_counts_attempts_in_the_conversation():
    from shiftlab.policies.base import Request
    from shiftlab.task import get_preset

    env = get_preset("gp-l").make_env()
    _, info = env.reset(seed=0)
    first = [{"role": "user", "content": "q"}]
    later = [*first, {"role": "assistant", "content": "x"}, {"role": "user", "content": "no"}]
    policy = RevisionPolicy(1, seed=0)
    fresh, revised = policy.generate([Request("gp-l", first, info), Request("gp-l", later, info)])
    assert revised.text == get_preset("gp-l").expert_answer(info)
    assert fresh.text != revised.text


def test_image_rows_carry_png_images_in_placeholder_order(tmp_path):
    ds = build_dataset([Source("gp-vl", 3, {"resolution": 96}), Source("gp-l", 2)], seed=0)
    assert ds.features["images"] == datasets.List(datasets.Image())
    image_rows = [r for r in ds if r["task"] == "gp-vl"]
    for row in image_rows:
        parts = row["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image", "text"]
        assert len(row["images"]) == 1 and row["images"][0].size == (96, 96)
    text_rows = [r for r in ds if r["task"] == "gp-l"]
    assert all(r["images"] == [] for r in text_rows)
    # The saved dataset loads back with the same images.
    ds.save_to_disk(str(tmp_path / "d"))
    back = datasets.load_from_disk(str(tmp_path / "d"))
    assert np.array_equal(np.asarray(back[0]["images"][0]), np.asarray(image_rows[0]["images"][0]))
    assert json.loads(back[0]["env"]) == {"resolution": 96}


def test_env_overrides_reach_the_environment():
    ds = build_dataset([Source("gp-l", 4, {"target": 12, "face_cards_as_ten": False})], seed=0)
    for row in ds:
        prompt = row["messages"][0]["content"]
        assert "equals 12" in prompt and "11, 12 and 13" in prompt


def test_bad_sources_fail_clearly():
    with pytest.raises(KeyError, match="unknown task"):
        Source("nope", 3)
    with pytest.raises(ValueError, match="from 0 to"):
        Source("gp-l", -1)
    with pytest.raises(ValueError, match="zero episodes"):
        build_dataset([Source("gp-l", 0)])


def test_pretraining_mixture_covers_every_variant():
    lm = mixture("lm", 16)
    envs = [(s.task, tuple(sorted(s.env.items()))) for s in lm]
    assert {dict(e).get("face_cards_as_ten") for t, e in envs if t == "gp-l"} == {True, False}
    assert len({dict(e).get("target") for t, e in envs if t == "gp-l"} - {None}) >= 3
    assert {dict(e).get("action_space") for t, e in envs if t == "virl-l"} == {"absolute", "relative"}
    assert any(s.revisions for s in lm)
    assert not any(s.task.startswith(("gp-vl", "virl-vl")) for s in lm)
    vlm = mixture("vlm", 16)
    colors = {s.env.get("suit_color") for s in vlm if s.task == "gp-vl"}
    assert colors == {"black", "red", "mixed"}
    with pytest.raises(ValueError):
        mixture("rnn")


def test_support_rows_are_true_facts():
    rows = list(support_rows(40, seed=1, images=True, tasks=["general-points", "virl"]))
    assert len(rows) == 40
    for row in rows:
        question, answer = _text(row["messages"][0]), row["messages"][1]["content"]
        if question.startswith("What is "):
            expression = question[len("What is "):-1]
            assert parse(expression).value == int(answer)
    with_images = [r for r in rows if not isinstance(r["messages"][0]["content"], str)]
    assert with_images and all(r["messages"][1]["content"].count(",") == 3 for r in with_images)
