"""The held-out check: an evaluation episode is found in training data when, and only when, the model
would read the same first prompt there; the pretraining mixture never holds an OOD evaluation episode."""

import pytest

pytest.importorskip("datasets")

from shiftlab.study import leakage  # noqa: E402
from shiftlab.task import Source, ood_presets  # noqa: E402
from shiftlab.training.expert_data import build_dataset  # noqa: E402
from shiftlab.training.pretrain import PRETRAIN_DATA_SEED, mixture  # noqa: E402


def _saved(tmp_path, sources, seed):
    path = tmp_path / "data"
    build_dataset(sources, seed=seed).save_to_disk(str(path))
    return leakage.dataset_prompts(path)


def test_an_evaluation_episode_replayed_in_training_is_found(tmp_path):
    env = {"num_cards": 4}  # enough hands that no two of these 12 episodes deal the same one
    evaluation = {"gp-l/rule-ood": leakage.first_prompts("gp-l/rule-ood", range(12), 0, evaluation=True, env=env)}
    # The same preset, options and seeds: every episode is found (revision rows included).
    training = _saved(tmp_path, [Source("gp-l/rule-ood", 6, env, revisions=1)], seed=0)
    assert leakage.check(evaluation, training) == {"gp-l/rule-ood": {"episodes": 12, "found_in_training": 6}}
    # Other seeds, or another rule at the same seeds: none is.
    elsewhere = leakage.first_prompts("gp-l/rule-ood", range(12), 5_000, evaluation=False, env=env)
    other_rule = leakage.first_prompts("gp-l", range(12), 0, evaluation=True, env=env)
    assert leakage.check(evaluation, set(elsewhere.values()) | set(other_rule.values()))["gp-l/rule-ood"][
        "found_in_training"] == 0


@pytest.mark.parametrize("task,env", [("gp-l", {"num_cards": 3, "max_attempts": 2}), ("gp-l", {}),
                                      ("virl-l", {"route_lengths": "mini"}), ("virl-l", {})])
def test_the_pretraining_mixture_holds_no_ood_evaluation_episode(tmp_path, task, env):
    """Each OOD preset's evaluation episodes (seeds 0.., as the study plays them) against every row the
    base is pretrained on: the mixture of the task's text sources with the study's held-out problems
    left out, at the pretraining seeds."""
    names = ["general-points"] if task.startswith("gp") else ["virl"]
    ood = [p.name for p in ood_presets(task) if not p.name.startswith(("gp-vl", "virl-vl"))]
    held_out = [{"task": name, "env": env} for name in ood]
    training = _saved(tmp_path, mixture("lm", 16, names, held_out), seed=PRETRAIN_DATA_SEED)
    evaluation = {name: leakage.first_prompts(name, range(24), 0, evaluation=True, env=env) for name in ood}
    assert evaluation
    for name, counts in leakage.check(evaluation, training).items():
        assert counts == {"episodes": 24, "found_in_training": 0}, name


def test_a_study_holds_out_exactly_the_problem_its_ood_evaluation_poses():
    """The shifted rule with the evaluated target and hand size goes; the same rule with another target
    or hand size, and the ID rule with the evaluated ones, stay."""
    def kept(env):
        return {(s.env.get("face_cards_as_ten"), s.env.get("target"), s.env.get("num_cards"))
                for s in mixture("lm", 8, ["general-points"], [{"task": "gp-l/rule-ood", "env": env}]) if not s.revisions}

    everything = kept({"target": 99})  # no source asks for 99: nothing is held out
    three = kept({"num_cards": 3, "max_attempts": 2})
    assert everything - three == {(False, 24, 3)}
    assert {(False, 24, 4), (False, 18, 3), (True, 24, 3)} <= three
    assert everything - kept({}) == {(False, 24, 4)}  # the preset's own four cards
