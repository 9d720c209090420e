"""Playing the game with a fake trainer: which coalitions get trained for each estimator, and that the Shapley
table can be rebuilt from the values the game produced."""

import numpy as np
import pandas as pd
import pytest

from assets.lm.registration import ProgressLog
from assets.royalties.game import play_game
from assets.royalties.royalty_shares import shapley_frame

PLAYERS = [f"owner_{i}" for i in range(1, 7)]
WEIGHTS = np.array([[3.0, 0.1], [0.2, 2.0], [0.5, 0.5], [0.1, 0.1], [0.0, 0.3], [0.4, 0.0]])  # player x piece


def fit_for_seed(log):
    def fit_for(seed):
        def fit(coalition):
            log.append((seed, coalition))
            return (seed, coalition)
        return fit
    return fit_for


def score(fitted, texts):
    """A near-additive game with a small interaction, so Monte Carlo has something to estimate."""
    seed, coalition = fitted
    members = [PLAYERS.index(p) for p in coalition]
    gain = WEIGHTS[members].sum(axis=0) + 0.3 * (len(members) >= 3) + 0.01 * seed
    return -20.0 + gain * (len(coalition) > 0)


def make_pieces(fitted):
    assert fitted[1] == frozenset(PLAYERS)  # sampled from the all-owners model
    return pd.DataFrame({"piece_id": ["gen-owner_1-000", "gen-owner_2-000"], "kind": "generated",
                         "source_owner": ["owner_1", "owner_2"], "text": ["a", "b"]})


@pytest.mark.parametrize("estimator", ["exact", "monte_carlo"])
def test_each_coalition_trained_once_and_values_rebuild_the_shapley_table(estimator):
    log = []
    options = {"relative_tolerance": 0.05, "min_permutations": 4, "max_permutations": 30}
    result = play_game(PLAYERS, fit_for_seed(log), [0, 1], make_pieces, score, estimator=estimator, mc_options=options)
    assert len(log) == len(set(log))  # never twice
    per_seed = result.estimators.set_index("seed")["coalitions_trained"]
    if estimator == "exact":
        assert (per_seed == 63).all()
    else:  # the permutations stop early and visit only some of the 64 coalitions
        assert (per_seed < 40).all() and (per_seed > 6).all()
    assert (result.values.loc[result.values["coalition"] == "{}", "value"] == 0).all()
    table, _, summary = shapley_frame(result.values, result.pieces, PLAYERS, **options)  # same permutations
    assert summary["exact_available"].tolist() == [estimator == "exact"] * 2
    phi = table[table["seed"] == 0].pivot(index="owner", columns="piece_id", values="phi").loc[PLAYERS]
    assert phi.to_numpy().argmax(axis=0).tolist() == [0, 1]  # owner_1 made piece 0 likely, owner_2 piece 1


def test_progress_log_speaks_about_ten_times():
    lines = []
    progress = ProgressLog(lines.append, expected=30)
    for i in range(30):
        progress(f"model {i}")
    assert len(lines) == 10 and lines[-1].startswith("30/30 model 29")
    with pytest.raises(ValueError, match="estimator"):
        play_game(PLAYERS, fit_for_seed([]), [0], make_pieces, score, estimator="banzhaf")
