"""Cost of Shapley royalties: coalition models trained and wall time, exact enumeration vs permutation Monte Carlo.

    python benchmarks/royalties_cost.py                      # 4, 6, 8 owners, tiny real models, a few minutes on CPU
    python benchmarks/royalties_cost.py --owners 4 6 --steps 10
    python benchmarks/royalties_cost.py --synthetic          # seconds: a cheap stand-in value function

What it measures. For each owner count n, a tiny facts world with n owners is built, a tiny base model is trained
on the public author's documents, and the pieces are 2 held-out documents per owner. The value of a coalition
is the real one of the study: the log-likelihood gain of the pieces under a model fine-tuned from the base on
base + the coalition's documents (`--steps` steps). Exact Shapley values train all 2^n - 1 coalition models;
Monte Carlo (the study's stopping rule: every SE <= 0.05 nats + `--rel-tol` x |v(N)|) trains only the coalitions
its permutations visit. Each estimator starts from an empty cache, so each count and time is its own; the
base model and the world are shared and not timed. The ratio exact / Monte Carlo is printed for both, with
the largest |phi_MC - phi_exact| in nats.

`--synthetic` replaces the fine-tune by a cheap deterministic value (a sum of per-owner gains plus pairwise
interactions) with a fixed sleep per "training" (`--fake-seconds`): it measures how many coalitions each
estimator needs and the estimators' own overhead, not training cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from assets.royalties.coalitions import CoalitionCache, CoalitionTraining, coalition_texts  # noqa: E402
from assets.royalties.coalitions import fit_coalition_model as fit_model  # noqa: E402
from assets.royalties.shapley import exact_shapley, monte_carlo_shapley  # noqa: E402


def real_game(n_owners: int, steps: int, seed: int = 0):
    """(owners, fit, score) of the study's value function on a tiny facts world with n_owners owners."""
    from assets.corpora.facts_world import FactsWorldSpec, build_world, generate_documents, vocabulary
    from assets.corpora.tokenization import load_tokenizer, save_tokenizer, train_word_level_tokenizer
    from assets.lm.family import fit_language_model
    from assets.lm.model import ModelSize, load_checkpoint
    from assets.lm.training import TrainConfig
    from assets.royalties.pieces import held_out_pieces, piece_log_likelihoods

    spec = FactsWorldSpec(seed=seed, n_people=60, n_cities=12, n_organisations=15, n_professions=max(8, n_owners),
                          n_owners=n_owners, n_train_documents=80 * n_owners + 200, n_validation_documents=20 * n_owners + 40,
                          n_test_documents=20 * n_owners + 40, n_protected=0)
    world = build_world(spec)
    documents = generate_documents(world, spec)
    tmp = Path(tempfile.mkdtemp(prefix="royalties-bench-"))
    save_tokenizer(train_word_level_tokenizer(vocabulary(world)), tmp / "tokenizer")
    tokenizer = load_tokenizer(tmp / "tokenizer")
    size = ModelSize("bench", 32, 1, 2, 64, 32)
    cfg = TrainConfig(max_steps=40, batch_size=16, learning_rate=3e-3, min_lr=3e-4, warmup_steps=4, eval_interval=40,
                      eval_batches=1, seed=seed)
    fitted = fit_language_model(size, tokenizer, coalition_texts(documents, frozenset(), ["public"], "train"),
                                coalition_texts(documents, frozenset(), ["public"], "validation"), cfg, tmp / "base")
    base, _ = load_checkpoint(fitted.checkpoint_dir)
    owners = [f"owner_{i + 1}" for i in range(n_owners)]
    pieces = held_out_pieces(documents, owners, 2, size.context_length - 1, np.random.default_rng(seed))
    training = CoalitionTraining(TrainConfig(max_steps=steps, batch_size=8, learning_rate=3e-3, min_lr=3e-4,
                                             warmup_steps=1, eval_interval=steps, eval_batches=1, seed=seed))
    texts = pieces["text"].tolist()

    def fit(coalition):
        return fit_model(base, tokenizer, documents, coalition, training)

    def score(model):
        return piece_log_likelihoods(model.model, tokenizer, texts)

    return owners, fit, score


def synthetic_game(n_owners: int, fake_seconds: float, seed: int = 0):
    """A cheap stand-in: v(S) = sum of members' gains + pairwise interactions, per piece; each fit sleeps."""
    rng = np.random.default_rng([seed, n_owners])
    owners = [f"owner_{i + 1}" for i in range(n_owners)]
    gains = rng.gamma(2.0, 5.0, size=(n_owners, 2 * n_owners))
    pairs = rng.normal(0.0, 1.0, size=(n_owners, n_owners, 2 * n_owners))

    def fit(coalition):
        time.sleep(fake_seconds)
        return [owners.index(p) for p in coalition]

    def score(members):
        value = gains[members].sum(axis=0) if members else np.zeros(gains.shape[1])
        for i in members:
            for j in members:
                if i < j:
                    value = value + pairs[i, j]
        return value - 50.0

    return owners, fit, score


def run(owners, fit, score, estimator: str, rel_tol: float, max_permutations: int):
    cache = CoalitionCache(owners, fit)
    value = lambda s: cache.value(s, score)  # noqa: E731
    started = time.perf_counter()
    if estimator == "exact":
        phi, extra = exact_shapley(owners, value), ""
    else:
        mc = monte_carlo_shapley(owners, value, seed=0, tolerance=0.05, relative_tolerance=rel_tol,
                                 min_permutations=10, max_permutations=max_permutations, check_every=5)
        phi, extra = mc.phi, f"{mc.n_permutations} permutations, converged={mc.converged}"
    seconds = time.perf_counter() - started
    trained = sum(1 for key in cache.fit_order if key != "{}")
    return phi, trained, seconds, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--steps", type=int, default=6, help="fine-tuning steps per coalition model")
    parser.add_argument("--rel-tol", type=float, default=0.02, help="Monte Carlo relative tolerance")
    parser.add_argument("--max-permutations", type=int, default=1000)
    parser.add_argument("--synthetic", action="store_true", help="cheap stand-in value function (see docstring)")
    parser.add_argument("--fake-seconds", type=float, default=0.05, help="sleep per synthetic 'training'")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads and not args.synthetic:
        import torch

        torch.set_num_threads(args.threads)

    kind = (f"synthetic value, sleep {args.fake_seconds:.2f}s per model" if args.synthetic
            else f"tiny LMs, {args.steps} fine-tuning steps per coalition")
    print(f"royalties cost benchmark ({kind}); Monte Carlo rel. tolerance {args.rel_tol}")
    header = f"{'owners':>6} {'estimator':>12} {'models':>7} {'seconds':>8}  notes"
    print(header + "\n" + "-" * len(header))
    for n in args.owners:
        owners, fit, score = synthetic_game(n, args.fake_seconds) if args.synthetic else real_game(n, args.steps)
        phi_exact, trained_exact, t_exact, _ = run(owners, fit, score, "exact", args.rel_tol, args.max_permutations)
        phi_mc, trained_mc, t_mc, notes = run(owners, fit, score, "monte_carlo", args.rel_tol, args.max_permutations)
        error = float(np.abs(phi_mc - phi_exact).max())
        print(f"{n:>6} {'exact':>12} {trained_exact:>7} {t_exact:>8.1f}  all {2 ** n - 1} non-empty coalitions")
        print(f"{n:>6} {'monte carlo':>12} {trained_mc:>7} {t_mc:>8.1f}  {notes}, max |phi_MC - phi_exact| "
              f"{error:.2f} nats (max |phi| {float(np.abs(phi_exact).max()):.1f})")
        print(f"{n:>6} {'ratio':>12} {trained_exact / max(trained_mc, 1):>7.2f} {t_exact / max(t_mc, 1e-9):>8.2f}  "
              "exact / Monte Carlo")


if __name__ == "__main__":
    main()
