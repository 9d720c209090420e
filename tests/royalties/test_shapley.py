"""Shapley estimators on games whose values are known: axioms, voting games, the airport game."""

import itertools
import math

import numpy as np
import pytest

from assets.royalties.shapley import (
    all_coalitions,
    coalition_key,
    exact_shapley,
    monte_carlo_shapley,
    parse_coalition,
    royalty_shares,
)

PLAYERS5 = ["a", "b", "c", "d", "e"]


def majority_game(players, quota):
    return lambda s: 1.0 if len(s) >= quota else 0.0


def weighted_voting_game(weights: dict, quota: float):
    return lambda s: 1.0 if sum(weights[p] for p in s) >= quota else 0.0


def airport_game(costs: dict):
    """Cost of a runway long enough for every plane in the coalition: v(S) = max cost in S."""
    return lambda s: max((costs[p] for p in s), default=0.0)


def airport_shapley(costs: dict) -> dict:
    """Littlechild-Owen: each segment's cost is split equally among the planes that need it."""
    order = sorted(costs, key=costs.get)
    phi, previous, share = {}, 0.0, 0.0
    for k, p in enumerate(order):
        share += (costs[p] - previous) / (len(order) - k)
        phi[p] = share
        previous = costs[p]
    return phi


def random_game(players, seed, null=None, twins=None):
    """Random values on every coalition; `null` adds nothing to any coalition, `twins` are interchangeable."""
    rng = np.random.default_rng(seed)
    table = {}
    for s in all_coalitions(players):
        core = s - {null} if null else s
        if twins:
            a, b = twins
            if (a in core) != (b in core):  # a symmetric value: only how many of the twins are in counts
                core = (core - {a, b}) | {a}
        key = frozenset(core)
        if key not in table:
            table[key] = 0.0 if not key else float(rng.normal(size=()))
        table[s] = table[key]
    return lambda s: table[frozenset(s)]


# ----------------------------------------------------------------------------------------- exact
def test_exact_axioms_on_a_random_game():
    value = random_game(PLAYERS5, seed=3, null="e", twins=("a", "b"))
    phi = exact_shapley(PLAYERS5, value)
    assert math.isclose(phi.sum(), value(frozenset(PLAYERS5)) - value(frozenset()), abs_tol=1e-12)  # efficiency
    assert math.isclose(phi[0], phi[1], abs_tol=1e-12)  # symmetry: a and b are interchangeable
    assert abs(phi[4]) < 1e-12  # null player
    assert abs(phi[2] - phi[3]) > 1e-3  # not everything is equal: the game is not trivial


def test_exact_matches_the_definition_by_orderings():
    players = ["a", "b", "c", "d"]
    value = random_game(players, seed=11)
    by_orderings = np.zeros(len(players))
    for order in itertools.permutations(range(len(players))):
        seen = set()
        for i in order:
            before = value(frozenset(players[j] for j in seen))
            seen.add(i)
            by_orderings[i] += value(frozenset(players[j] for j in seen)) - before
    np.testing.assert_allclose(exact_shapley(players, value), by_orderings / math.factorial(len(players)), atol=1e-12)


def test_exact_known_games():
    np.testing.assert_allclose(exact_shapley(PLAYERS5, majority_game(PLAYERS5, 3)), np.full(5, 0.2), atol=1e-12)
    weights = {"x": 50, "y": 49, "z": 1}
    np.testing.assert_allclose(exact_shapley(["x", "y", "z"], weighted_voting_game(weights, 51)),
                               [2 / 3, 1 / 6, 1 / 6], atol=1e-12)
    costs = {"a": 1.0, "b": 3.0, "c": 4.0, "d": 8.0, "e": 8.0}
    expected = airport_shapley(costs)
    np.testing.assert_allclose(exact_shapley(PLAYERS5, airport_game(costs)), [expected[p] for p in PLAYERS5], atol=1e-12)
    assert math.isclose(expected["a"], 0.2) and math.isclose(expected["e"], 0.2 + 0.5 + 1 / 3 + 2)


def test_exact_is_elementwise_for_vector_games():
    games = [random_game(PLAYERS5, seed=s) for s in range(3)]
    stacked = exact_shapley(PLAYERS5, lambda s: np.array([g(s) for g in games]))
    assert stacked.shape == (5, 3)
    for j, g in enumerate(games):
        np.testing.assert_allclose(stacked[:, j], exact_shapley(PLAYERS5, g), atol=1e-12)


# ------------------------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("name", ["majority", "weighted", "airport"])
def test_monte_carlo_known_games(name):
    if name == "majority":
        players, value, expected = PLAYERS5, majority_game(PLAYERS5, 3), np.full(5, 0.2)
    elif name == "weighted":
        players = ["x", "y", "z"]
        value, expected = weighted_voting_game({"x": 50, "y": 49, "z": 1}, 51), np.array([2 / 3, 1 / 6, 1 / 6])
    else:
        costs = {"a": 1.0, "b": 3.0, "c": 4.0, "d": 8.0, "e": 8.0}
        players, value = PLAYERS5, airport_game(costs)
        expected = np.array([airport_shapley(costs)[p] for p in PLAYERS5])
    total = value(frozenset(players))
    mc = monte_carlo_shapley(players, value, seed=1, relative_tolerance=0.01, max_permutations=20000)
    assert mc.converged and mc.n_permutations < 20000
    assert np.all(mc.standard_error <= 0.01 * total + 1e-12)
    # the estimate is within 4 standard errors (and the stopping tolerance) of the known value
    assert np.all(np.abs(mc.phi - expected) <= 4 * mc.standard_error + 1e-12)
    assert math.isclose(mc.phi.sum(), total, abs_tol=1e-9)  # efficiency holds for every ordering


def test_monte_carlo_axioms_and_exact_agreement():
    value = random_game(PLAYERS5, seed=5, null="e", twins=("a", "b"))
    mc = monte_carlo_shapley(PLAYERS5, value, seed=0, relative_tolerance=0.0, tolerance=0.03, max_permutations=20000)
    exact = exact_shapley(PLAYERS5, value)
    assert mc.converged
    assert mc.phi[4] == 0.0 and mc.standard_error[4] == 0.0  # a null player adds exactly nothing in every ordering
    assert np.all(np.abs(mc.phi - exact) <= 4 * mc.standard_error + 1e-12)
    assert abs(mc.phi[0] - mc.phi[1]) <= 4 * math.hypot(mc.standard_error[0], mc.standard_error[1])
    assert math.isclose(mc.phi.sum(), exact.sum(), abs_tol=1e-9)
    assert mc.n_coalitions <= 2 ** len(PLAYERS5)


def test_stopping_rule_and_history():
    value = random_game(PLAYERS5, seed=2)
    loose = monte_carlo_shapley(PLAYERS5, value, seed=0, tolerance=100.0, min_permutations=7, max_permutations=500)
    assert loose.converged and loose.n_permutations == 7  # stops as soon as it may
    tight = monte_carlo_shapley(PLAYERS5, value, seed=0, tolerance=1e-6, relative_tolerance=0.0, max_permutations=40)
    assert not tight.converged and tight.n_permutations == 40
    h = tight.history
    assert set(h["player"]) == set(PLAYERS5) and h["n_permutations"].max() == 40
    final = h[h["n_permutations"] == 40].set_index("player").loc[PLAYERS5]
    np.testing.assert_allclose(final["estimate"], tight.phi)
    # the standard error shrinks roughly like 1/sqrt(m)
    se = h.groupby("n_permutations")["standard_error"].mean()
    assert se.loc[40] < se.loc[5]


def test_monte_carlo_vector_game_shares_permutations():
    games = [random_game(PLAYERS5, seed=s) for s in range(4)]
    calls = []

    def value(s):
        calls.append(s)
        return np.array([g(s) for g in games])

    mc = monte_carlo_shapley(PLAYERS5, value, seed=0, max_permutations=200)
    assert mc.phi.shape == (5, 4) and len(calls) == len(set(calls)) == mc.n_coalitions  # each coalition once
    exact = exact_shapley(PLAYERS5, value)
    assert np.all(np.abs(mc.phi - exact) <= 4 * mc.standard_error + 1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError, match="distinct"):
        exact_shapley(["a", "a"], lambda s: 0.0)
    with pytest.raises(ValueError, match="min_permutations"):
        monte_carlo_shapley(["a", "b"], lambda s: 0.0, min_permutations=1)
    with pytest.raises(ValueError, match="max_permutations"):
        monte_carlo_shapley(["a", "b"], lambda s: 0.0, min_permutations=10, max_permutations=5)
    with pytest.raises(ValueError, match="players"):
        coalition_key({"z"}, ["a", "b"])


def test_coalition_keys_round_trip():
    players = ["owner_1", "owner_2", "owner_3"]
    assert coalition_key(frozenset({"owner_3", "owner_1"}), players) == "{owner_1,owner_3}"
    assert coalition_key(frozenset(), players) == "{}"
    for s in all_coalitions(players):
        assert parse_coalition(coalition_key(s, players)) == s
    assert len(all_coalitions(players)) == 8 and all_coalitions(players)[0] == frozenset()


# --------------------------------------------------------------------------------------- shares
def test_royalty_shares_negative_rule():
    phi = np.array([[3.0, -1.0, 0.0], [1.0, -2.0, 0.0], [-4.0, -1.0, 0.0]])  # owners x pieces
    shares = royalty_shares(phi, axis=0)
    np.testing.assert_allclose(shares[:, 0], [0.75, 0.25, 0.0])  # the negative owner is clipped, rest renormalised
    np.testing.assert_allclose(shares[:, 1], 0.0)  # nobody's data helped: nothing is owed
    np.testing.assert_allclose(shares[:, 2], 0.0)
    assert np.all(shares >= 0)
