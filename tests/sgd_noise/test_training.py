"""The trainers: batched runs are independent, branches follow their parent until the cut, runs of a seed
share initialisation and data, and the loss actually falls; the LM runs on fresh facts-world documents."""

import numpy as np
import pytest

from assets.sgd_noise.data import TeacherTask
from assets.sgd_noise.synthetic import RunSpec, SweepSpec, train_group

TASK = TeacherTask(input_dim=8, teacher_width=16, classes=4)
SWEEP = SweepSpec(student_width=16, steps=120, train_size=64, eval_size=256, distance_samples=32, log_points=12)


@pytest.fixture(scope="module")
def online_group():
    specs = [RunSpec(0.1, 0), RunSpec(0.4, 0), RunSpec(0.1, 1), RunSpec(0.4, 0, cut_step=60, cut_factor=0.25)]
    return train_group(TASK, "online", 8, specs, SWEEP)


def test_a_run_trained_alone_matches_the_same_run_in_a_batch(online_group):
    alone = train_group(TASK, "online", 8, [RunSpec(0.1, 1)], SWEEP)
    key = "online/B8/lr0.1/s1"
    together = online_group.curves[online_group.curves["run_key"] == key]
    both = alone.curves.merge(together, on="step", suffixes=("_alone", "_batched"))
    assert len(both) == len(alone.curves) >= 10  # the group also logs its branch's cut step
    np.testing.assert_allclose(both["eval_loss_alone"], both["eval_loss_batched"], rtol=1e-4)
    np.testing.assert_allclose(alone.predictions[key][-1], online_group.predictions[key][-1], atol=1e-5)


def test_runs_of_a_seed_share_init_and_the_branch_follows_its_parent_until_the_cut(online_group):
    c = online_group.curves.pivot(index="step", columns="run_key", values="eval_loss")
    parent, branch = "online/B8/lr0.4/s0", "online/B8/lr0.4/s0/cut60x0.25"
    assert c.loc[0, "online/B8/lr0.1/s0"] == c.loc[0, parent] != c.loc[0, "online/B8/lr0.1/s1"]
    assert 60 in c.index  # the cut step is logged
    np.testing.assert_allclose(c.loc[:60, branch], c.loc[:60, parent], rtol=1e-6)
    assert (c.loc[61:, branch] != c.loc[61:, parent]).all()
    runs = online_group.runs.set_index("run_key")
    assert runs.loc[branch, "parent_run"] == parent and runs.loc[branch, "cut_lr_factor"] == 0.25


def test_training_lowers_the_held_out_loss_towards_the_teacher_entropy(online_group):
    c = online_group.curves
    first, last = c[c["step"] == 0], c[c["step"] == SWEEP.steps]
    assert (last["eval_loss"].to_numpy() < first["eval_loss"].to_numpy() - 0.05).all()
    assert (c["eval_excess"] > -1e-4).all()  # cross-entropy against the teacher never beats its entropy
    assert (c["examples"] == c["step"] * 8).all()
    preds = online_group.predictions["online/B8/lr0.1/s0"]
    assert preds.shape == (c["checkpoint"].max() + 1, 32, 4)
    np.testing.assert_allclose(preds.sum(-1), 1.0, atol=1e-5)


def test_offline_runs_count_epochs_and_fit_their_training_set():
    result = train_group(TASK, "offline", 16, [RunSpec(0.5, 0)], SweepSpec(
        student_width=64, steps=400, train_size=64, eval_size=256, distance_samples=16, log_points=8))
    c = result.curves
    end = c[c["step"] == 400].iloc[0]
    assert end["epochs"] == pytest.approx(400 * 16 / 64)
    assert end["train_loss"] < end["eval_loss"] - 0.2  # 100 epochs of 64 noisy examples: over-fitted


def test_lm_branch_with_a_larger_batch_sees_more_fresh_windows():
    from assets.corpora.defs import FactsWorldConfig
    from assets.corpora.facts_world import build_world, vocabulary
    from assets.corpora.tokenization import train_word_level_tokenizer
    from assets.lm.model import ModelSize, build_model
    from assets.sgd_noise.language import FactsSource, LMRunSpec, train_lm, windows_for

    world = build_world(FactsWorldConfig().spec())
    tokenizer = train_word_level_tokenizer(vocabulary(world))
    size = ModelSize("t", 16, 1, 2, 32, 12)
    spec = LMRunSpec("online", 4, 1e-2, 0, cut_step=6, cut_batch_factor=3)
    source = FactsSource(world, tokenizer, offline_documents=10)
    windows = windows_for(spec, source, 12)
    heldout = source.heldout(8, 12)
    run = train_lm(spec, lambda s: build_model(size, tokenizer.get_vocab_size(), s), windows, heldout, 12,
                   [3, 6, 9], warmup_steps=2)
    c = run.curves.pivot(index="step", columns="run_key", values="examples")
    assert c.loc[12, spec.key] == 48 and c.loc[12, spec.branch_key] == 6 * 4 + 6 * 12
    assert windows.drawn == 6 * 4 + 6 * 12  # parent and branch share the branch's batches after the cut
    loss = run.curves.pivot(index="step", columns="run_key", values="eval_loss")
    assert loss.loc[6, spec.key] == loss.loc[6, spec.branch_key]
    assert loss.loc[12, spec.key] != loss.loc[12, spec.branch_key]
    assert loss.loc[12, spec.key] < loss.loc[0, spec.key]
    assert len(run.snapshots[spec.branch_key]) == len(loss)
    with pytest.raises(ValueError, match="branch needs"):
        LMRunSpec("online", 4, 1e-2, 0, cut_step=6)


def test_lm_noise_cut_leaves_its_parent_untouched():
    """The branch gets its own copy of the parent's Adam state: after the cut, the parent trains exactly as
    it would without a branch (a shared state would let the branch's updates move the parent's moments and
    step counter)."""
    import torch

    from assets.corpora.defs import FactsWorldConfig
    from assets.corpora.facts_world import build_world, vocabulary
    from assets.corpora.tokenization import train_word_level_tokenizer
    from assets.lm.model import ModelSize, build_model
    from assets.sgd_noise.language import FactsSource, LMRunSpec, train_lm, windows_for

    world = build_world(FactsWorldConfig().spec())
    tokenizer = train_word_level_tokenizer(vocabulary(world))
    size = ModelSize("t", 16, 1, 2, 32, 12)
    source = FactsSource(world, tokenizer, offline_documents=10)
    heldout = source.heldout(8, 12)

    def run(spec):
        return train_lm(spec, lambda s: build_model(size, tokenizer.get_vocab_size(), s),
                        windows_for(spec, source, 12), heldout, 12, [3, 6, 9], warmup_steps=2)

    cut = LMRunSpec("online", 4, 1e-2, 0, cut_step=6, cut_lr_factor=0.25)  # same batches as the parent
    alone, branched = run(LMRunSpec("online", 4, 1e-2, 0)), run(cut)
    parent = branched.curves[branched.curves["run_key"] == cut.key].set_index("step")["eval_loss"]
    np.testing.assert_array_equal(parent.to_numpy(), alone.curves.set_index("step")["eval_loss"].to_numpy())
    for ours, theirs in zip(branched.snapshots[cut.key][-1].values(), alone.snapshots[cut.key][-1].values(),
                            strict=True):
        assert torch.equal(ours, theirs)
    branch = branched.curves[branched.curves["run_key"] == cut.branch_key].set_index("step")["eval_loss"]
    assert branch.loc[12] != parent.loc[12]
