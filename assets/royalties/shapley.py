"""Shapley values of a cooperative game, exactly and by permutation Monte Carlo, and royalty shares.

A game is a list of players and a value function ``value(coalition) -> float | array`` on frozensets of
players. An array-valued game is many games over the same players at once (one per generated piece): every
estimator works element-wise, and Monte Carlo uses the same permutations for every element, so a coalition's
value (one trained model) is computed once for all pieces.

- `exact_shapley`: phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! (v(S+i) - v(S)); all 2^n
  coalitions are evaluated once.
- `monte_carlo_shapley`: phi_i is the mean of i's marginal contribution v(P_i + i) - v(P_i) over uniformly
  random orderings (P_i: the players before i). Each ordering's contributions sum to v(N) - v(0), so every
  estimate is exactly efficient. Stopping rule: after at least `min_permutations`, stop as soon as every
  standard error (sample std of the contributions / sqrt(m)) is at most
  ``tolerance + relative_tolerance * sum_j |phi_j|`` (per element; the current estimates' total attribution,
  which is what royalty shares divide by, and which stays away from 0 when positive and negative values
  cancel in v(N) - v(0)), or at `max_permutations`.
- `royalty_shares`: phi_i / sum_j phi_j with negative phi clipped at 0 first (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

ValueFunction = Callable[[frozenset[str]], "float | np.ndarray"]
MAX_EXACT_PLAYERS = 20


def _check_players(players: Sequence[str]) -> list[str]:
    players = list(players)
    if not players:
        raise ValueError("players must be a non-empty list of distinct names")
    if len(set(players)) != len(players):
        raise ValueError(f"players must be distinct, got {players!r}")
    for p in players:
        if not isinstance(p, str) or not p or any(c in p for c in "{},"):
            raise ValueError(f"players must be non-empty strings without '{{', '}}' or ',', got {p!r}")
    return players


def coalition_key(coalition: frozenset[str] | Sequence[str], players: Sequence[str]) -> str:
    """A coalition as text, members in `players` order: ``{owner_1,owner_3}``; the empty coalition is ``{}``."""
    members = set(coalition)
    unknown = members - set(players)
    if unknown:
        raise ValueError(f"coalition has players {sorted(unknown)} not in players {list(players)}")
    return "{" + ",".join(p for p in players if p in members) + "}"


def parse_coalition(key: str) -> frozenset[str]:
    """Inverse of `coalition_key`."""
    if not (isinstance(key, str) and key.startswith("{") and key.endswith("}")):
        raise ValueError(f"coalition key must look like '{{a,b}}' or '{{}}', got {key!r}")
    inner = key[1:-1]
    return frozenset(inner.split(",")) if inner else frozenset()


def all_coalitions(players: Sequence[str]) -> list[frozenset[str]]:
    """Every subset of `players` (2^n of them), smallest first."""
    players = _check_players(players)
    n = len(players)
    masks = sorted(range(2**n), key=lambda m: (bin(m).count("1"), m))
    return [frozenset(players[i] for i in range(n) if m >> i & 1) for m in masks]


def exact_shapley(players: Sequence[str], value: ValueFunction) -> np.ndarray:
    """Exact Shapley values by enumerating all 2^n coalitions: shape ``(n, *value_shape)``."""
    players = _check_players(players)
    n = len(players)
    if n > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_shapley enumerates 2^n coalitions; n={n} > {MAX_EXACT_PLAYERS}: "
                         "use monte_carlo_shapley")
    values = [np.asarray(value(frozenset(players[i] for i in range(n) if m >> i & 1)), dtype=np.float64)
              for m in range(2**n)]
    table = np.stack(values)  # (2^n, *shape), indexed by bitmask
    weights = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    phi = np.zeros((n, *table.shape[1:]))
    for m in range(2**n):
        size = bin(m).count("1")
        for i in range(n):
            if not m >> i & 1:
                phi[i] += weights[size] * (table[m | 1 << i] - table[m])
    return phi


@dataclass
class MonteCarloShapley:
    """Result of `monte_carlo_shapley`.

    phi, standard_error: ``(n, *value_shape)``. history: one row per check (every `check_every`
    permutations) and player and value element: n_permutations, player, item, estimate, standard_error.
    n_coalitions: distinct coalitions whose value was asked for (with a model-backed game: models needed).
    """

    phi: np.ndarray
    standard_error: np.ndarray
    n_permutations: int
    converged: bool
    n_coalitions: int
    history: pd.DataFrame


def monte_carlo_shapley(
    players: Sequence[str],
    value: ValueFunction,
    *,
    seed: int = 0,
    tolerance: float = 0.0,
    relative_tolerance: float = 0.01,
    min_permutations: int = 10,
    max_permutations: int = 1000,
    check_every: int = 1,
) -> MonteCarloShapley:
    """Permutation-sampling Shapley estimate with a stopping rule on the standard error (module docstring).

    Coalition values are memoised within the call, so a coalition met in many orderings is valued once.
    """
    players = _check_players(players)
    for name, v in (("min_permutations", min_permutations), ("max_permutations", max_permutations),
                    ("check_every", check_every)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if min_permutations < 2:
        raise ValueError(f"min_permutations must be >= 2 (a standard error needs two samples), got {min_permutations}")
    if max_permutations < min_permutations:
        raise ValueError(f"max_permutations ({max_permutations}) must be >= min_permutations ({min_permutations})")
    if not (tolerance >= 0 and relative_tolerance >= 0):
        raise ValueError(f"tolerance and relative_tolerance must be >= 0, got {tolerance!r}, {relative_tolerance!r}")

    n = len(players)
    memo: dict[int, np.ndarray] = {}

    def v(mask: int) -> np.ndarray:
        if mask not in memo:
            memo[mask] = np.asarray(value(frozenset(players[i] for i in range(n) if mask >> i & 1)),
                                    dtype=np.float64)
        return memo[mask]

    total = v(2**n - 1) - v(0)
    rng = np.random.default_rng(seed)
    # Welford running mean and sum of squared deviations of the marginal contributions.
    mean, m2 = np.zeros((n, *total.shape)), np.zeros((n, *total.shape))
    history: list[pd.DataFrame] = []
    converged = False
    se = np.full_like(mean, np.inf)
    m = 0
    while m < max_permutations:
        contributions = np.zeros_like(mean)
        mask, before = 0, v(0)
        for i in rng.permutation(n):
            mask |= 1 << int(i)
            after = v(mask)
            contributions[i] = after - before
            before = after
        m += 1
        delta = contributions - mean
        mean += delta / m
        m2 += delta * (contributions - mean)
        if m < 2 or (m % check_every and m not in (min_permutations, max_permutations)):
            continue
        se = np.sqrt(m2 / (m - 1) / m)
        history.append(_history_rows(players, m, mean, se))
        threshold = tolerance + relative_tolerance * np.abs(mean).sum(axis=0)
        if m >= min_permutations and bool(np.all(se <= threshold)):
            converged = True
            break
    return MonteCarloShapley(phi=mean, standard_error=se, n_permutations=m, converged=converged,
                             n_coalitions=len(memo), history=pd.concat(history, ignore_index=True))


def _history_rows(players: list[str], m: int, phi: np.ndarray, se: np.ndarray) -> pd.DataFrame:
    n = len(players)
    flat_phi, flat_se = phi.reshape(n, -1), se.reshape(n, -1)
    items = flat_phi.shape[1]
    return pd.DataFrame({
        "n_permutations": m,
        "player": np.repeat(players, items),
        "item": np.tile(np.arange(items), n),
        "estimate": flat_phi.ravel(),
        "standard_error": flat_se.ravel(),
    })


def royalty_shares(phi: np.ndarray, axis: int = 0) -> np.ndarray:
    """Royalty share of each player: max(phi_i, 0) / sum_j max(phi_j, 0) along `axis`.

    Negative phi rule: an owner whose data made the piece *less* likely is owed nothing, so negative values
    are clipped at 0 and the rest renormalised to sum to 1. If no owner has positive phi (the owners' data
    did not make the piece more likely than the base data alone), every share is 0: no royalty is owed.
    """
    positive = np.clip(np.asarray(phi, dtype=np.float64), 0.0, None)
    total = positive.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, positive / np.where(total > 0, total, 1.0), 0.0)
    return shares
