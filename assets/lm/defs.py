"""Dagster side of the language-model family: one training asset per (corpus, size), registered in MLflow.

``lm_<corpus>_<size>`` is the model record (exact ``model_uri``, MLflow run, parameter count, validation
loss, tokens seen, hardware); ``lm_<corpus>_<size>_curve`` its training curve; ``lm_<corpus>_family`` the
sizes side by side with a plot, and a check that larger models reach lower validation loss.
"""

import dataclasses
from functools import partial
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape, Optimiser
from assets.lm.model import ModelSize
from assets.lm.registration import (
    DatasetInput,
    Display,
    imported_shape,
    imported_tokenizer,
    load_tokenizer_of,
    train_and_register,
)
from assets.lm.sizes import FAMILY_SIZES
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "lm"
FAMILIES: dict[str, list[ModelSize]] = {corpus: pick(**sizes) for corpus, sizes in FAMILY_SIZES.items()}
# corpus -> (documents asset, tokenizer asset)
CORPUS_INPUTS = {"facts": ("facts_documents", "facts_tokenizer"), "code": ("code_corpus", "code_tokenizer")}


class LanguageModelConfig(ModelShape, Optimiser, StudyConfig):
    """Training of one model of the family. Shape fields left empty take the family's size for this asset."""

    max_steps: int = pick(tiny=30, demo=250, gpu=5000)
    batch_size: int = pick(tiny=8, demo=24, gpu=64)
    grad_accum_steps: int = 1
    learning_rate: float = pick(tiny=3e-3, demo=2e-3, gpu=6e-4)
    min_lr: float = pick(tiny=3e-4, demo=2e-4, gpu=6e-5)
    warmup_steps: int = pick(tiny=5, demo=40, gpu=300)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = pick(tiny=10, demo=100, gpu=500)
    eval_batches: int = pick(tiny=2, demo=8, gpu=20)
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    d_ff: int | None = None
    context_length: int | None = None
    checkpoint_dir: str | None = Field(
        default=None, description="import this local Hugging Face checkpoint directory instead of training")
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on the new version")
    nproc_per_node: int = Field(
        default=1, ge=1, description="more than 1: train under torchrun with this many processes (DDP, one per GPU "
        "on a GPU machine), launched as an external process through Dagster Pipes")


class FactsLanguageModelConfig(LanguageModelConfig):
    """Training of one model of the facts-world family (word-level tokens, short documents)."""


class CodeLanguageModelConfig(LanguageModelConfig):
    """Training of one model of the code family (byte-level BPE, longer contexts: fewer sequences per step).

    The demo trains longer and hotter than the facts family: at 200 steps and lr 2e-3 the pair stopped at 5.3 / 4.9
    nats, too weak for the studies that use it as a generator or judge (watermark, uncertainty); 450 steps at lr
    4e-3 reach 4.5 / 4.2 for ~40 s more.
    """

    max_steps: int = pick(tiny=30, demo=450, gpu=5000)
    batch_size: int = pick(tiny=8, demo=16, gpu=64)
    learning_rate: float = pick(tiny=3e-3, demo=4e-3, gpu=6e-4)
    min_lr: float = pick(tiny=3e-4, demo=4e-4, gpu=6e-5)


CONFIGS: dict[str, type[LanguageModelConfig]] = {"facts": FactsLanguageModelConfig, "code": CodeLanguageModelConfig}


def language_model_asset(corpus: str, size: ModelSize) -> dg.AssetsDefinition:
    """The training asset of one (corpus, size): the model record and its training curve."""
    name = f"lm_{corpus}_{size.name}"
    documents_key, tokenizer_key = CORPUS_INPUTS[corpus]
    config_class = CONFIGS[corpus]

    @dg.multi_asset(
        name=name,
        outs={
            name: dg.AssetOut(group_name=GROUP, code_version="1", tags=stage("training"), is_required=False,
                              description=f"The {size.name} model of the {corpus} family: its MLflow record."),
            f"{name}_curve": dg.AssetOut(group_name=GROUP, code_version="1", tags=stage("training"), is_required=False,
                                         description=f"Training curve of {name}: step, tokens, losses, lr, tokens/s."),
        },
        ins={"documents": dg.AssetIn(documents_key), "tokenizer_record": dg.AssetIn(tokenizer_key)},
        pool="gpu",
        can_subset=True,  # either output alone (e.g. `--select lm_facts_small`) trains and emits only that one
    )
    @yields_selected
    def _train(context: dg.AssetExecutionContext, config: config_class, tracking: Tracking,
               compute: Compute, warehouse: WarehousePaths, pipes: dg.PipesSubprocessClient,
               documents: pd.DataFrame, tokenizer_record: dict):
        from assets.lm.family import corpus_texts, fit_language_model

        compute.seed_everything(config.seed)
        model_size, cfg = config.model_size(size.name, family=size), config.train_config(compute)
        train_texts, val_texts = corpus_texts(corpus, documents)
        torchrun = config.nproc_per_node > 1 and not config.checkpoint_dir
        tokenizer = None if torchrun else load_tokenizer_of(tokenizer_record, tracking)
        # an imported checkpoint with a tokenizer of its own is registered with it, and the record names that one
        own = imported_tokenizer(config.checkpoint_dir, tokenizer) if config.checkpoint_dir else None
        # an imported checkpoint's own shape (its config), not the family size it stands in for
        shape = {"name": model_size.name, **(imported_shape(config.checkpoint_dir) if config.checkpoint_dir
                                              else dataclasses.asdict(model_size))}
        params = {"corpus": corpus, "size": model_size.name, **shape,
                  **{k: v for k, v in config.model_dump().items() if k not in shape},
                  "tokenizer_uri": tokenizer_record["tokenizer_uri"] if own is None else "the checkpoint's own"}

        def fit(workdir, on_log):
            if torchrun:
                return _fit_under_torchrun(context, pipes, tracking, config.nproc_per_node, model_size, cfg,
                                           tokenizer_record, train_texts, val_texts, workdir)
            return fit_language_model(model_size, tokenizer, train_texts, val_texts, cfg, workdir / "model",
                                      checkpoint_dir=config.checkpoint_dir, on_log=on_log)

        fitted, record, metadata = train_and_register(
            context, tracking, compute, fit, run_name=name, params=params, steps=cfg.max_steps,
            registered=f"lm-{corpus}-{model_size.name}", aliases=config.aliases, plot_name=f"lm/{name}",
            datasets=[DatasetInput.of_texts(f"{corpus}-{split}", texts, split, source=documents_key)
                      for split, texts in (("train", train_texts), ("validation", val_texts))],
            display=Display(dg.MetadataValue.url, partial(figure_metadata, warehouse_root=warehouse.root,
                                                          run_id=context.run.run_id)))
        record |= {"corpus": corpus, "size": model_size.name, "source": fitted.source,
                   "non_embedding_parameters": fitted.non_embedding_parameters, "vocab_size": fitted.vocab_size,
                   "model_size": {**shape, "vocab_size": shape.get("vocab_size", fitted.vocab_size),
                                  "parameters": fitted.parameters},
                   "tokenizer_uri": tokenizer_record["tokenizer_uri"] if own is None else record["model_uri"],
                   "processes": config.nproc_per_node if fitted.source == "trained" else 1}
        yield dg.Output(record, output_name=name, metadata={**metadata, "tokens_seen": fitted.tokens_seen})
        yield dg.Output(fitted.curve, output_name=f"{name}_curve")

    return _train


def _fit_under_torchrun(context, pipes, tracking, nproc: int, size: ModelSize, cfg, tokenizer_record, train_texts,
                        val_texts, workdir):
    """Train in ``nproc`` torchrun processes launched through Dagster Pipes; rank 0 streams its progress here."""
    from assets.lm.distributed import read_result, torchrun_launch, write_job

    tokenizer_dir = tracking.download_model(tokenizer_record["tokenizer_uri"])
    job = write_job(workdir / "job", size, cfg, tokenizer_dir, train_texts, val_texts)
    launch = torchrun_launch(job, nproc)
    context.log.info(f"launching {nproc} training processes: {' '.join(launch['command'])}")
    pipes.run(context=context, **launch)
    return read_result(job)


def family_asset(corpus: str, sizes: list[ModelSize]) -> dg.AssetsDefinition:
    """All sizes of one corpus side by side: parameters vs validation loss, and the loss curves."""
    names = [f"lm_{corpus}_{s.name}" for s in sizes]
    ins = {n: dg.AssetIn(n) for n in names} | {f"{n}_curve": dg.AssetIn(f"{n}_curve") for n in names}

    key = dg.AssetKey(f"lm_{corpus}_family")
    checks = [
        dg.AssetCheckSpec("larger_models_reach_lower_loss", asset=key,
                          description="Validation loss falls as parameters grow (WARN: a finding, not a bug)."),
        dg.AssetCheckSpec("family_valid", asset=key, description="Finite losses, positive parameter counts."),
    ]

    @dg.asset(name=key.path[-1], group_name=GROUP, ins=ins, code_version="1", check_specs=checks,
              tags=stage("evaluation"), description=f"The {corpus} family: its sizes ({', '.join(s.name for s in sizes)}) "
              "side by side, parameters vs validation loss, and the loss curves (a table and a plot).")
    def _family(context: dg.AssetExecutionContext, warehouse: WarehousePaths, **inputs: Any):
        from assets.lm.plots import family_figure

        rows = [{k: inputs[n][k] for k in ("size", "parameters", "non_embedding_parameters", "final_val_loss",
                                           "tokens_seen", "train_seconds", "model_uri")} for n in names]
        table = pd.DataFrame(rows).sort_values("parameters", ignore_index=True)
        fig = family_figure(corpus, table, {inputs[n]["size"]: inputs[f"{n}_curve"] for n in names})
        yield dg.Output(table, metadata={
            "family": markdown_table(table),
            "plot": figure_metadata(fig, f"lm/{corpus}_family", warehouse.root, context.run.run_id)})

        losses = table["final_val_loss"].tolist()
        yield dg.AssetCheckResult(
            check_name="larger_models_reach_lower_loss", severity=dg.AssetCheckSeverity.WARN,
            passed=all(b < a for a, b in zip(losses, losses[1:], strict=False)),
            metadata={"losses_by_size": dg.MetadataValue.json(dict(zip(table["size"], losses, strict=True)))})
        gxe = expectations()
        yield gx_check(table, [
            gxe.ExpectColumnValuesToBeBetween(column="final_val_loss", min_value=0, max_value=100),
            gxe.ExpectColumnValuesToBeBetween(column="parameters", min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="size"),
            *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("final_val_loss", "parameters")],
        ], name=key.path[-1], check_name="family_valid")

    return _family


_assets: list[dg.AssetsDefinition] = []
for _corpus, _sizes in FAMILIES.items():
    _assets += [language_model_asset(_corpus, s) for s in _sizes] + [family_asset(_corpus, _sizes)]

defs = dg.Definitions(assets=_assets)
