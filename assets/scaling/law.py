"""The data-constrained scaling law of Muennighoff et al. (2023), as their public fitting notebook defines it.

    L(N, D, U_D) = E + A / N'^α + B / D'^β
    D' = U_D + U_D · R_D* · (1 − exp(−R_D / R_D*)),   R_D = max(D / U_D − 1, 0)
    N' = U_N + U_N · R_N* · (1 − exp(−R_N / R_N*)),   R_N = max(N / U_N − 1, 0),   U_N = min(N, N_opt(U_D))

N_opt(U_D) is the Chinchilla compute-optimal parameter count for a budget whose optimal data is U_D:
G = (αA / βB)^(1/(α+β)), N_opt(C) = G (C/6)^(β/(α+β)), D_opt(C) = G⁻¹ (C/6)^(α/(α+β)), so
N_opt(U_D) = G · (G · U_D)^(β/α). Constants are kept in the paper's log form a, b, e (A = e^a, B = e^b,
E = e^e). R_D* = R_N* = ∞ is the plain Chinchilla law (D' = D, N' = N).

Where the law is evaluated with U_D > D (fewer tokens than the unique budget), the unique tokens actually
seen are D, as in the notebook's ``loss_expr`` (``if U > D: U = D``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.special import logsumexp


@dataclass(frozen=True)
class ScalingLaw:
    """Constants of the law: log-form a, b, e, exponents α, β, and the decay constants R_D*, R_N*."""

    a: float
    b: float
    e: float
    alpha: float
    beta: float
    rd_star: float = math.inf
    rn_star: float = math.inf

    def __post_init__(self) -> None:
        for field in ("a", "b", "e", "alpha", "beta"):
            if not math.isfinite(getattr(self, field)):
                raise ValueError(f"ScalingLaw.{field} must be finite, got {getattr(self, field)!r}")
        for field in ("rd_star", "rn_star"):
            value = getattr(self, field)
            if math.isnan(value) or value < 0:
                raise ValueError(f"ScalingLaw.{field} must be >= 0 (inf: no decay), got {value!r}")

    @property
    def A(self) -> float:
        return math.exp(self.a)

    @property
    def B(self) -> float:
        return math.exp(self.b)

    @property
    def E(self) -> float:
        return math.exp(self.e)

    @property
    def G(self) -> float:
        """Chinchilla's G = (αA / βB)^(1/(α+β)), computed in logs so large a, b cannot overflow."""
        if self.alpha <= 0 or self.beta <= 0:
            raise ValueError(f"G needs positive exponents, got alpha={self.alpha!r}, beta={self.beta!r}")
        log_g = (math.log(self.alpha) + self.a - math.log(self.beta) - self.b) / (self.alpha + self.beta)
        return math.exp(log_g)

    def chinchilla(self) -> ScalingLaw:
        """The same constants without data constraints (R_D* = R_N* = ∞)."""
        return replace(self, rd_star=math.inf, rn_star=math.inf)

    def with_decay(self, rd_star: float, rn_star: float = math.inf) -> ScalingLaw:
        return replace(self, rd_star=float(rd_star), rn_star=float(rn_star))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# The paper's C4 constants: Chinchilla form fitted to Chinchilla's C4 IsoFLOP points with α = β tied, then
# R_D*, R_N* fitted to their 182 C4 runs with the rest frozen (datablations `utils/parametric_fit.ipynb`).
PAPER_C4 = ScalingLaw(a=6.255414, b=7.3049974, e=0.6254804, alpha=0.3526596, beta=0.3526596,
                      rd_star=15.387756, rn_star=5.309743)


def _positive(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be positive finite numbers, got {value!r}")
    return arr


def repetitions(total: np.ndarray, unique: np.ndarray) -> np.ndarray:
    """R = max(total / unique − 1, 0): how many times the unique amount is repeated beyond its first use."""
    return np.maximum(np.asarray(total, float) / np.asarray(unique, float) - 1.0, 0.0)


def decayed(unique: np.ndarray, repeats: np.ndarray, r_star: float) -> np.ndarray:
    """U + U·R*·(1 − exp(−R/R*)): the worth of U used 1 + R times when each repeat decays with R*.

    R* = ∞ gives U·(1 + R) (repeats as good as new); R* = 0 gives U (repeats worth nothing).
    """
    unique, repeats = np.asarray(unique, float), np.asarray(repeats, float)
    if math.isinf(r_star):
        return unique * (1.0 + repeats)
    if r_star <= 0:
        return unique.copy()
    return unique + unique * r_star * (-np.expm1(-repeats / r_star))


def optimal_parameters_for_data(unique_tokens, law: ScalingLaw) -> np.ndarray:
    """N_opt(U_D) = G · (G · U_D)^(β/α): the compute-optimal model for a budget whose optimal data is U_D."""
    unique_tokens = _positive("unique_tokens", unique_tokens)
    return law.G * (law.G * unique_tokens) ** (law.beta / law.alpha)


def unique_parameters(parameters, unique_tokens, law: ScalingLaw) -> np.ndarray:
    """U_N = min(N, N_opt(U_D)): parameters beyond what U_D unique tokens can use count as 'repeated'."""
    return np.minimum(_positive("parameters", parameters), optimal_parameters_for_data(unique_tokens, law))


def effective_data(unique_tokens, tokens, rd_star: float) -> np.ndarray:
    """D' = U_D + U_D·R_D*·(1 − exp(−R_D/R_D*)), R_D = D/U_D − 1 (U_D clipped to D)."""
    tokens = _positive("tokens", tokens)
    unique = np.minimum(_positive("unique_tokens", unique_tokens), tokens)
    return decayed(unique, repetitions(tokens, unique), rd_star)


def effective_parameters(parameters, unique_tokens, law: ScalingLaw) -> np.ndarray:
    """N' = U_N + U_N·R_N*·(1 − exp(−R_N/R_N*)), R_N = N/U_N − 1, U_N = min(N, N_opt(U_D))."""
    parameters = _positive("parameters", parameters)
    if math.isinf(law.rn_star):
        return parameters.copy()
    u_n = unique_parameters(parameters, unique_tokens, law)
    return decayed(u_n, repetitions(parameters, u_n), law.rn_star)


def _inputs(parameters, tokens, unique_tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = _positive("parameters", parameters), _positive("tokens", tokens)
    u = np.minimum(_positive("unique_tokens", unique_tokens), d)
    return np.broadcast_arrays(n, d, u)


def predict_log_loss(parameters, tokens, unique_tokens, law: ScalingLaw) -> np.ndarray:
    """log L as the notebook computes it: LSE(a − α log N', b − β log D', e)."""
    n, d, u = _inputs(parameters, tokens, unique_tokens)
    n_eff = effective_parameters(n, u, law)
    d_eff = effective_data(u, d, law.rd_star)
    terms = np.stack([law.a - law.alpha * np.log(n_eff), law.b - law.beta * np.log(d_eff),
                      np.full(n_eff.shape, law.e)])
    return logsumexp(terms, axis=0)


def predict_loss(parameters, tokens, unique_tokens, law: ScalingLaw) -> np.ndarray:
    """L(N, D, U_D) = E + A/N'^α + B/D'^β."""
    n, d, u = _inputs(parameters, tokens, unique_tokens)
    n_eff = effective_parameters(n, u, law)
    d_eff = effective_data(u, d, law.rd_star)
    return law.E + law.A / n_eff**law.alpha + law.B / d_eff**law.beta


def chinchilla_optimum(compute, law: ScalingLaw) -> tuple[np.ndarray, np.ndarray]:
    """Unconstrained Chinchilla optimum for C = 6ND: (N_opt, D_opt)."""
    c6 = _positive("compute", compute) / 6.0
    s = law.alpha + law.beta
    return law.G * c6 ** (law.beta / s), c6 ** (law.alpha / s) / law.G
