"""Dagster side of the royalties study (Wang et al. 2024): Shapley royalty shares among copyright owners.

Players are the facts world's copyright owners; the public author's documents are the common base corpus.
``royalties_base_model`` trains the LM family on the base corpus alone (the lm_facts_* models saw every
owner's documents, so they cannot stand for "no owner data"). ``royalties_game`` trains one model per
coalition (fine-tuned from the base model on base + the coalition's documents, each coalition once), samples
pieces from the all-owners model prompted in each owner's style and from one neutral prompt (their source
decided by the training data they copy), adds held-out real documents, and computes
coalition values, exact and Monte Carlo Shapley values and royalty shares. ``royalties_revenue_split``
pays out a batch; ``royalties/findings`` compares the headline with the paper's.
"""

import dataclasses
from functools import partial
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape, Optimiser
from assets.lm.registration import (
    DatasetInput,
    Display,
    load_registered,
    load_tokenizer_of,
    train_and_register,
)
from assets.royalties import validity
from assets.royalties.findings import CHECK_CLAIMS
from assets.royalties.options import GAME_OUTS
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "royalties"
BASE_MODEL_NAME = "royalties-facts-base"  # registered names; the family's are lm-<corpus>-<size>
GENERATOR_NAME = "royalties-facts-all-owners"
PAPER = "Wang et al. 2024"


def _check(name: str, asset: str) -> dg.AssetCheckSpec:
    """The data check ``name`` of ``asset``, described by what it holds the table to (validity.DESCRIPTIONS)."""
    return dg.AssetCheckSpec(name, asset=asset, description=validity.DESCRIPTIONS[name])


def _data_check(check_name: str, asset: str, rules: tuple[pd.DataFrame, list],
                beyond_gx: tuple[bool, dict] = (True, {})) -> dg.AssetCheckResult:
    """The result of ``asset``'s data check: its Great Expectations ``rules`` (table, expectations) and the rules
    GX does not express (all hold, their numbers), passed when every one holds."""
    result = gx_check(*rules, name=asset, check_name=check_name)
    held, numbers = beyond_gx
    return dg.AssetCheckResult(asset_key=asset, check_name=check_name, passed=bool(result.passed and held),
                               metadata={**result.metadata, **numbers})


# ------------------------------------------------------------------------------------------- base model
class RoyaltiesBaseConfig(ModelShape, Optimiser, StudyConfig):
    """The base model: the LM family's architecture trained on the public author's documents only."""

    base_author: str = Field(default="public", description="author whose documents form the common base corpus")
    d_model: int = pick(tiny=32, demo=64, gpu=256)
    n_layers: int = pick(tiny=1, demo=2, gpu=4)
    n_heads: int = pick(tiny=2, demo=4, gpu=4)
    d_ff: int = pick(tiny=64, demo=192, gpu=1024)
    context_length: int = pick(tiny=32, demo=48, gpu=128)
    max_steps: int = pick(tiny=20, demo=150, gpu=3000)
    batch_size: int = pick(tiny=8, demo=32, gpu=64)
    learning_rate: float = pick(tiny=3e-3, demo=3e-3, gpu=1e-3)
    min_lr: float = pick(tiny=3e-4, demo=3e-4, gpu=1e-4)
    warmup_steps: int = pick(tiny=2, demo=15, gpu=200)
    eval_batches: int = pick(tiny=1, demo=2, gpu=10)


@dg.asset(group_name=GROUP, code_version="1", pool="gpu", tags=stage("training"),
          ins={"documents": dg.AssetIn("facts_documents"), "tokenizer_record": dg.AssetIn("facts_tokenizer")})
def royalties_base_model(context: dg.AssetExecutionContext, config: RoyaltiesBaseConfig, tracking: Tracking,
                         compute: Compute, warehouse: WarehousePaths, documents: pd.DataFrame,
                         tokenizer_record: dict) -> dict:
    """The base model of the royalties game: trained on the public author's documents only (v({}) is measured
    against it), logged and registered in MLflow as royalties-facts-base."""
    from assets.lm.family import fit_language_model
    from assets.royalties.options import base_corpus

    compute.seed_everything(config.seed)
    train_texts, val_texts = base_corpus(documents, config.base_author, config.seed)
    tokenizer = load_tokenizer_of(tokenizer_record, tracking)
    size, cfg = config.model_size("royalties-base"), config.train_config(compute, eval_interval=config.max_steps)
    params = {**config.model_dump(), "tokenizer_uri": tokenizer_record["tokenizer_uri"],
              "train_documents": len(train_texts)}
    _, record, metadata = train_and_register(
        context, tracking, compute, lambda workdir, on_log: fit_language_model(
            size, tokenizer, train_texts, val_texts, cfg, workdir / "model", on_log=on_log),
        run_name="royalties-base", asset_key="royalties_base_model", params=params, steps=cfg.max_steps,
        registered=BASE_MODEL_NAME, plot_name="royalties/base_model_loss_curve",
        datasets=[DatasetInput.of_texts(f"royalties-base-{split}", texts, split, "facts_documents")
                  for split, texts in (("train", train_texts), ("validation", val_texts))],
        display=Display(dg.MetadataValue.url, partial(figure_metadata, warehouse_root=warehouse.root,
                                                      run_id=context.run.run_id)))
    context.add_output_metadata(metadata)
    return {**record, "base_author": config.base_author, "model_size": dataclasses.asdict(size),
            "tokenizer_uri": tokenizer_record["tokenizer_uri"], "max_steps": config.max_steps}


# ------------------------------------------------------------------------------------------------ game
class RoyaltiesGameConfig(StudyConfig):
    """The royalties game: coalition models, pieces, and the Shapley estimators."""

    n_owners: int | None = Field(default=None, description="use the first n owners (None: every owner)")
    coalition_init: Literal["finetune", "scratch"] = Field(
        default="finetune", description="coalition models fine-tuned from the base model, or trained from scratch")
    finetune_steps: int = Field(default=pick(tiny=6, demo=36, gpu=300),
                                description="steps of fine-tuning the base model on a coalition's data")
    scratch_steps: int = Field(default=pick(tiny=20, demo=150, gpu=3000),
                               description="steps of a from-scratch coalition model (coalition_init='scratch')")
    batch_size: int = pick(tiny=8, demo=16, gpu=64)
    learning_rate: float = pick(tiny=3e-3, demo=3e-3, gpu=5e-4)
    min_lr: float = pick(tiny=3e-4, demo=3e-4, gpu=5e-5)
    warmup_steps: int = pick(tiny=1, demo=3, gpu=30)
    n_seeds: int = Field(default=pick(tiny=2, demo=2, gpu=3),
                         description="coalition models retrained with seeds seed..seed+n_seeds-1 (stability)")
    seed: int = 0
    estimator: Literal["auto", "exact", "monte_carlo"] = Field(
        default="auto", description="auto: exact up to exact_max_owners owners, Monte Carlo above")
    exact_max_owners: int = Field(default=6, description="most owners for the exact Shapley value (2^n "
                                  "coalition models); estimator 'auto' uses Monte Carlo above")
    mc_relative_tolerance: float = Field(default=0.02, description="stop when every SE <= tol + rel * sum_i |phi_i|")
    mc_tolerance: float = Field(default=0.05, description="absolute part of the stopping threshold (nats)")
    mc_min_permutations: int = Field(default=10, description="Monte Carlo orderings before the stopping "
                                     "rule may stop (>= 2)")
    mc_max_permutations: int = Field(default=pick(tiny=60, demo=1000, gpu=2000),
                                     description="Monte Carlo stops after this many orderings at the latest")
    mc_check_every: int = Field(default=5, description="permutations between stopping-rule checks (history rows)")
    n_generated_per_owner: int = Field(default=pick(tiny=2, demo=4, gpu=16), description="pieces generated "
                                       "per owner (and control author), prompted in that author's style")
    n_held_out_per_owner: int = Field(default=pick(tiny=1, demo=3, gpu=16),
                                      description="each owner's test documents taken as held-out pieces")
    n_neutral_pieces: int = Field(default=pick(tiny=6, demo=32, gpu=64),
                                  description="pieces sampled from one neutral prompt (<s> alone), each attributed "
                                              "to the author whose training data it copies most")
    public_control: bool = Field(default=True, description="also generate pieces prompted in the public style")
    prompt_words: int = Field(default=1, description="opening words of an author's train document that "
                              "prompt a generated piece")
    max_new_tokens: int = Field(default=pick(tiny=12, demo=24, gpu=60),
                                description="most tokens generated per piece (capped by the context length)")
    piece_sentences: int | None = Field(
        default=1, description="cut generated pieces after this many sentences (None: keep up to max_new_tokens); "
                               "small generators drift into other owners' templates after the first sentence")
    temperature: float = 1.0


GAME_CHECKS = [_check("pieces_valid", "royalties_pieces"),
               _check("coalition_values_valid", "royalties_coalition_values"),
               _check("shapley_valid", "royalties_shapley")]


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", description=text, tags=stage("training"))
          for name, text in GAME_OUTS.items()},  # the game trains one model per coalition
    ins={"documents": dg.AssetIn("facts_documents"), "base_record": dg.AssetIn("royalties_base_model")},
    check_specs=GAME_CHECKS,
    pool="gpu",
    can_subset=True,
)
@yields_selected
def royalties_game(context: dg.AssetExecutionContext, config: RoyaltiesGameConfig, tracking: Tracking,
                   compute: Compute, warehouse: WarehousePaths, documents: pd.DataFrame, base_record: dict):
    """Train every coalition's model once, generate and score the pieces, and share each piece among owners by
    the Shapley value of the log-likelihood gain (exact by enumeration and permutation Monte Carlo)."""
    from assets.royalties import plots
    from assets.royalties.coalition_runs import play_tracked_game
    from assets.royalties.coalitions import owners_of
    from assets.royalties.options import game_options, prompted_owner_on_top, shown_pieces

    owners = owners_of(documents, config.n_owners)
    options = game_options(config, compute, base_record, len(owners))
    compute.seed_everything(config.seed)
    base_model, tokenizer = load_registered(base_record, tracking, compute.torch_device())
    seeds = [config.seed + k for k in range(config.n_seeds)]
    game = play_tracked_game(
        tracking, context.run.run_id, documents, owners, base_model, tokenizer, base_record["model_uri"],
        seeds=seeds, registered=GENERATOR_NAME, log=context.log.info, **options,
        params={**config.model_dump(), "owners": ",".join(owners), "estimator_used": options["estimator"],
                "base_model_uri": base_record["model_uri"]})
    pieces, values, shapley, models = game.pieces, game.values, game.shapley, game.models
    top_fraction = prompted_owner_on_top(shapley)
    context.log.info(f"prompted owner on top: {top_fraction}")

    run_id, first_seed = context.run.run_id, seeds[0]
    shown = shown_pieces(pieces)
    yield dg.Output(pieces, output_name="royalties_pieces", metadata={
        "pieces": markdown_table(pieces[["piece_id", "kind", "source_owner", "text"]], max_rows=12),
        "generator_uri": str(pieces["generator_uri"].max())})
    yield dg.Output(values, output_name="royalties_coalition_values", metadata={
        "mean value by coalition (first seed)": markdown_table(
            values[values["seed"] == first_seed].groupby("coalition")["value"].mean().reset_index())})
    yield dg.Output(models, output_name="royalties_coalition_models", metadata={
        "models_trained": int(models["trained"].sum()),
        "models": markdown_table(models[["seed", "coalition", "final_val_loss", "train_seconds", "mean_value"]])})
    yield dg.Output(shapley, output_name="royalties_shapley", metadata={
        **{f"prompted owner on top ({kind})": float(v) for kind, v in top_fraction.items()},
        "shares_per_piece": figure_metadata(plots.shares_plot(shapley, owners, first_seed), "royalties/shares",
                                            warehouse.root, run_id)})
    yield dg.Output(game.history, output_name="royalties_mc_convergence", metadata={
        "convergence": figure_metadata(plots.convergence_plot(game.history, shapley, shown, first_seed),
                                       "royalties/mc_convergence", warehouse.root, run_id)})
    yield dg.Output(game.estimators, output_name="royalties_estimators",
                    metadata={"estimators": markdown_table(game.estimators)})
    yield from _game_checks(pieces, values, shapley, owners, int(base_model.config.max_position_embeddings))


def _game_checks(pieces: pd.DataFrame, values: pd.DataFrame, shapley: pd.DataFrame, owners: list[str],
                 context_length: int):
    """The game's data checks (GAME_CHECKS): its pieces, coalition values and Shapley values."""
    gxe = expectations()
    yield _data_check("pieces_valid", "royalties_pieces", validity.pieces(gxe, pieces, context_length))
    yield _data_check("coalition_values_valid", "royalties_coalition_values",
                      validity.coalition_values(gxe, values, len(owners)), validity.coalition_values_hold(values))
    yield _data_check("shapley_valid", "royalties_shapley", validity.shapley(gxe, shapley, owners),
                      validity.shapley_holds(shapley, values, owners))


# ------------------------------------------------------------------------------------------- revenue
class RevenueConfig(StudyConfig):
    revenue_per_piece: float = Field(default=1.0, description="revenue each piece earns, shared by royalty share")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"),
          check_specs=[_check("revenue_split_valid", "royalties_revenue_split")])
def royalties_revenue_split(context: dg.AssetExecutionContext, config: RevenueConfig, royalties_shapley: pd.DataFrame):
    """The revenue of the batch of pieces split among owners by royalty share, per seed and piece kind
    (what no owner is owed is the row "(unpaid)")."""
    from assets.royalties.royalty_shares import revenue_split

    split = revenue_split(royalties_shapley, config.revenue_per_piece)
    yield dg.Output(split, metadata={"split": markdown_table(split)})
    yield _data_check("revenue_split_valid", "royalties_revenue_split",
                      validity.revenue_split(expectations(), split), validity.revenue_split_holds(split))


# ------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey(["royalties", "findings"])


@dg.asset(key_prefix=["royalties"], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"royalties_shapley": dg.AssetIn("royalties_shapley"), "royalties_pieces": dg.AssetIn("royalties_pieces"),
               "royalties_estimators": dg.AssetIn("royalties_estimators")},
          check_specs=findings_check_specs(FINDINGS_KEY, CHECK_CLAIMS))
def royalties_findings(context: dg.AssetExecutionContext, royalties_shapley: pd.DataFrame,
                       royalties_pieces: pd.DataFrame, royalties_estimators: pd.DataFrame):
    """Headline results against the paper's claims: the source owner receives the largest share (prompted
    pieces, neutral-prompt pieces attributed by copied data, held-out documents); shares are stable across
    seeds; Monte Carlo against the exact Shapley values."""
    from assets.royalties.findings import CHECKS, royalties_findings
    from assets.royalties.options import game_scale
    from assets.royalties.royalty_shares import headline_numbers

    shapley, estimators = royalties_shapley, royalties_estimators
    n_owners, n_seeds = shapley["owner"].nunique(), shapley["seed"].nunique()
    h, scale = headline_numbers(shapley, royalties_pieces), game_scale(shapley, estimators)
    yield from findings_results(royalties_findings(h, estimators, n_owners, n_seeds, scale), CHECKS)


defs = dg.Definitions(assets=[royalties_base_model, royalties_game, royalties_revenue_split, royalties_findings])
