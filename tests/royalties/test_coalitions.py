"""The coalition cache (no coalition trained twice), coalition models and the pieces, on a tiny facts world."""

import numpy as np
import pytest

from assets.royalties.coalitions import (
    CoalitionCache,
    CoalitionTraining,
    coalition_texts,
    fit_coalition_model,
)
from assets.royalties.shapley import all_coalitions, exact_shapley, monte_carlo_shapley

PLAYERS = ["owner_1", "owner_2", "owner_3"]


# ------------------------------------------------------------------------------------------- cache
class CountingFit:
    """A fake trainer: the 'model' of S is the set itself; every call is recorded."""

    def __init__(self):
        self.calls = []

    def __call__(self, coalition):
        self.calls.append(coalition)
        return coalition


def size_score(model):
    return np.array([len(model) ** 2, 10.0 * ("owner_1" in model)])


def test_cache_trains_each_coalition_once_across_estimators():
    fit = CountingFit()
    cache = CoalitionCache(PLAYERS, fit)
    value = lambda s: cache.value(s, size_score)  # noqa: E731
    mc = monte_carlo_shapley(PLAYERS, value, seed=0, max_permutations=30)
    exact = exact_shapley(PLAYERS, value)
    exact_again = exact_shapley(PLAYERS, value)
    assert sorted(map(sorted, fit.calls)) == sorted(map(sorted, all_coalitions(PLAYERS)))  # each exactly once
    assert cache.n_fits == 8 and len(cache.scored()) == 8
    np.testing.assert_array_equal(exact, exact_again)
    np.testing.assert_allclose(exact[:, 1], [10.0, 0.0, 0.0])  # only owner_1 moves the second piece
    assert np.all(np.abs(mc.phi - exact) <= 4 * mc.standard_error + 1e-9)
    np.testing.assert_allclose(mc.phi[:, 1], [10.0, 0.0, 0.0])  # the additive piece has no variance at all
    np.testing.assert_array_equal(cache.value(frozenset(), size_score), 0.0)


def test_kept_model_is_reused_then_released():
    fit = CountingFit()
    cache = CoalitionCache(PLAYERS, fit)
    grand = frozenset(PLAYERS)
    assert cache.model(grand) == grand and cache.model(grand) == grand
    cache.log_likelihoods(grand, size_score)  # scores the kept model: no second training
    cache.release(grand)
    cache.log_likelihoods(grand, size_score)  # memoised scores: still no second training
    assert fit.calls == [grand]
    with pytest.raises(ValueError, match="another scorer"):
        cache.log_likelihoods(grand, lambda m: np.zeros(2))
    with pytest.raises(ValueError, match="not in players"):
        cache.model({"owner_9"})
    with pytest.raises(RuntimeError, match="twice"):
        cache.model(grand)  # released after scoring: asking for the model again would retrain it


# ----------------------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny facts world with three owners, its tokenizer and a base model trained on the public author only."""
    from assets.corpora.facts_world import FactsWorldSpec, build_world, generate_documents, vocabulary
    from assets.corpora.tokenization import load_tokenizer, save_tokenizer, train_word_level_tokenizer
    from assets.lm.family import fit_language_model
    from assets.lm.model import ModelSize
    from assets.lm.training import TrainConfig

    spec = FactsWorldSpec(n_people=60, n_cities=12, n_organisations=15, n_professions=8, n_owners=3,
                          n_train_documents=300, n_validation_documents=60, n_test_documents=60, n_protected=0)
    built = build_world(spec)
    documents = generate_documents(built, spec)
    directory = tmp_path_factory.mktemp("tok")
    save_tokenizer(train_word_level_tokenizer(vocabulary(built)), directory)
    tokenizer = load_tokenizer(directory)
    base_train = coalition_texts(documents, frozenset(), ["public"], "train")
    base_val = coalition_texts(documents, frozenset(), ["public"], "validation")
    cfg = TrainConfig(max_steps=40, batch_size=16, learning_rate=3e-3, min_lr=3e-4, warmup_steps=4, eval_interval=40,
                      eval_batches=1)
    size = ModelSize(name="t", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=32)
    fitted = fit_language_model(size, tokenizer, base_train, base_val, cfg, tmp_path_factory.mktemp("base") / "m")
    from assets.lm.model import load_checkpoint

    base, _ = load_checkpoint(fitted.checkpoint_dir)
    return documents, tokenizer, base


def test_coalition_data_is_base_plus_members(world):
    documents, _, _ = world
    texts = set(coalition_texts(documents, frozenset({"owner_2"}), ["public"], "validation"))
    authors = set(documents.loc[documents["text"].isin(texts), "author"])
    assert authors == {"public", "owner_2"}


def test_finetuning_on_an_owner_raises_that_owners_likelihood(world):
    from assets.lm.training import TrainConfig
    from assets.royalties.pieces import piece_log_likelihoods

    documents, tokenizer, base = world
    training = CoalitionTraining(TrainConfig(max_steps=20, batch_size=16, learning_rate=2e-3, min_lr=2e-4,
                                             warmup_steps=2, eval_interval=20, eval_batches=1))
    empty = fit_coalition_model(base, tokenizer, documents, frozenset(), training)
    assert empty.model is base and not empty.trained  # v({}) is measured against the base model itself
    before = {p: base.state_dict()[p].clone() for p in list(base.state_dict())[:3]}
    owner_1 = fit_coalition_model(base, tokenizer, documents, frozenset({"owner_1"}), training)
    assert owner_1.trained and owner_1.model is not base
    assert all((base.state_dict()[p] == v).all() for p, v in before.items())  # the base model is left untouched

    def held_out(owner):
        texts = documents.loc[(documents["author"] == owner) & (documents["split"] == "test"), "text"].head(8)
        return [" ".join(t.split()[:30]) for t in texts]

    gain = {o: float(np.mean(piece_log_likelihoods(owner_1.model, tokenizer, held_out(o))
                             - piece_log_likelihoods(base, tokenizer, held_out(o)))) for o in ("owner_1", "owner_2")}
    assert gain["owner_1"] > 0 and gain["owner_1"] > gain["owner_2"] + 1.0, gain


def test_scratch_training_starts_from_a_fresh_model(world):
    from assets.lm.model import ModelSize
    from assets.lm.training import TrainConfig

    documents, tokenizer, base = world
    size = ModelSize(name="t", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=32)
    training = CoalitionTraining(TrainConfig(max_steps=3, batch_size=8, warmup_steps=1, eval_interval=3, eval_batches=1),
                                 init="scratch", model_size=size)
    fitted = fit_coalition_model(base, tokenizer, documents, frozenset({"owner_3"}), training)
    assert fitted.trained and fitted.tokens_seen == 3 * 8 * 32
    embedding = fitted.model.get_input_embeddings().weight
    assert not (embedding == base.get_input_embeddings().weight).all()


def test_scratch_training_needs_a_size():
    from assets.lm.training import TrainConfig

    with pytest.raises(ValueError, match="model_size"):
        CoalitionTraining(TrainConfig(), init="scratch")
    with pytest.raises(ValueError, match="init"):
        CoalitionTraining(TrainConfig(), init="warm")


def test_pieces(world):
    from assets.royalties.pieces import (
        generate_pieces,
        held_out_pieces,
        piece_log_likelihoods,
        style_prompts,
        truncate_to_sentences,
    )

    documents, tokenizer, base = world
    assert truncate_to_sentences("a b . c d e . f g", 6) == "a b ."
    assert truncate_to_sentences("a b c d", 2) == "a b"
    rng = np.random.default_rng(0)
    heads = {t.split()[0] for t in documents.loc[documents["author"] == "owner_2", "text"]}
    prompts = style_prompts(documents, "owner_2", 5, rng)
    assert len(prompts) == 5 and set(prompts) <= heads
    pieces = generate_pieces(base, tokenizer, {"owner_2": prompts}, max_new_tokens=10, seed=0)
    assert (pieces["source_owner"] == "owner_2").all() and (pieces["n_tokens"] <= 11).all()
    assert all(t.split()[0] == p for t, p in zip(pieces["text"], prompts, strict=True))
    assert not pieces["text"].str.contains("<pad>|<s>|<unk>|</s>").any()
    held = held_out_pieces(documents, ["owner_1", "owner_3"], 2, 31, rng)
    assert len(held) == 4 and (held["n_tokens"] <= 31).all() and (held["kind"] == "held_out").all()
    ll = piece_log_likelihoods(base, tokenizer, pieces["text"].tolist() + held["text"].tolist())
    assert ll.shape == (9,) and np.all(ll < 0) and np.all(np.isfinite(ll))
    with pytest.raises(ValueError, match="test documents"):
        held_out_pieces(documents, ["owner_1"], 10_000, 31, rng)


def test_neutral_pieces_share_one_empty_prompt(world):
    from assets.royalties.pieces import neutral_pieces

    documents, tokenizer, base = world
    authors = ["owner_1", "owner_2", "owner_3", "public"]
    neutral = neutral_pieces(base, tokenizer, documents, authors, 6, 10, max_sentences=1, seed=0)
    assert 0 < len(neutral) <= 6 and (neutral["kind"] == "neutral").all() and (neutral["prompt"] == "").all()
    assert neutral["piece_id"].is_unique and (neutral["n_tokens"] >= 1).all()
    assert set(neutral["source_owner"]) <= {*authors, ""} and (neutral["copied_words"] >= 1).all()
