"""The LM trainer's loops on the device: training losses summed where they are computed (read back only
when logged, equal to summing them one by one as Python floats) and snapshots that copy tied weights once."""

import numpy as np
import torch

import assets.sgd_noise.language as language
from assets.lm.model import ModelSize, build_model
from assets.sgd_noise.language import host_snapshot


def test_a_snapshot_copies_tied_weights_once_and_keeps_every_value():
    for tied in (True, False):
        model = build_model(ModelSize("t", 16, 1, 2, 32, 12), 50, 0, tie_embeddings=tied)
        snapshot, state = host_snapshot(model), model.state_dict()
        assert snapshot.keys() == state.keys()
        assert all(torch.equal(snapshot[k], v) and snapshot[k].data_ptr() != v.data_ptr() for k, v in state.items())
        shared = snapshot["lm_head.weight"] is snapshot["model.embed_tokens.weight"]
        assert shared == tied and len({id(v) for v in snapshot.values()}) == len(snapshot) - tied


def test_logged_training_loss_is_the_mean_of_the_step_losses_as_python_floats(monkeypatch):
    from assets.corpora.defs import FactsWorldConfig
    from assets.corpora.facts_world import build_world, vocabulary
    from assets.corpora.tokenization import train_word_level_tokenizer

    world = build_world(FactsWorldConfig().spec())
    tokenizer = train_word_level_tokenizer(vocabulary(world))
    source = language.FactsSource(world, tokenizer, offline_documents=10)
    spec = language.LMRunSpec("online", 4, 3e-2, 0, cut_step=4, cut_lr_factor=0.25)
    step_losses = []  # (model, loss) of every training step, in order
    loss = language._loss

    def recording(model, x, y):
        value = loss(model, x, y)
        if model.training:
            step_losses.append((id(model), float(value.detach())))
        return value

    monkeypatch.setattr(language, "_loss", recording)
    run = language.train_lm(spec, lambda s: build_model(ModelSize("t", 16, 1, 2, 32, 12), tokenizer.get_vocab_size(), s),
                            language.windows_for(spec, source, 12), source.heldout(8, 12), 9, [3, 6],
                            warmup_steps=2)
    parent = [v for m, v in step_losses if m == step_losses[0][0]]
    branch = [v for m, v in step_losses if m != step_losses[0][0]]
    assert len(parent) == 9 and len(branch) == 5

    def mean(values):  # the old trainer's sum: a Python float, one step at a time
        total = 0.0
        for v in values:
            total += v
        return total / len(values)

    curves = run.curves.set_index(["run_key", "step"])["train_loss"]
    assert np.isnan(curves[(spec.key, 0)])
    assert curves[(spec.key, 3)] == mean(parent[:3]) and curves[(spec.key, 6)] == mean(parent[3:6])
    assert curves[(spec.key, 9)] == mean(parent[6:9]) and curves[(spec.branch_key, 9)] == mean(branch[2:5])
    # the branch leaves at step 5 carrying the parent's sum of steps 4; its step 6 is that plus its own 5, 6
    assert curves[(spec.branch_key, 6)] == (parent[3] + branch[0] + branch[1]) / 3
