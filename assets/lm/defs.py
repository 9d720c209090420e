"""Dagster side of the language-model family: one training asset per (corpus, size), registered in MLflow.

``lm_<corpus>_<size>`` is the model record (exact ``model_uri``, MLflow run, parameter count, validation
loss, tokens seen, hardware); ``lm_<corpus>_<size>_curve`` its training curve; ``lm_<corpus>_family`` the
sizes side by side with a plot, and a check that larger models reach lower validation loss.
"""

import dataclasses
import math
import tempfile
import time
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.model import ModelSize
from resources.compute import Compute
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "lm"

# The family, per corpus and profile. Sizes grow in width and depth so the larger models can learn more.
_S = ModelSize
FAMILIES: dict[str, list[ModelSize]] = {
    "facts": pick(
        tiny=[_S("small", 32, 1, 2, 64, 32), _S("large", 64, 2, 4, 128, 32)],
        demo=[_S("small", 48, 1, 4, 144, 64), _S("medium", 96, 2, 4, 288, 64), _S("large", 160, 3, 4, 480, 64)],
        gpu=[_S("small", 256, 4, 4, 1024, 256), _S("medium", 512, 8, 8, 2048, 256), _S("large", 768, 12, 12, 3072, 256)],
    ),
    "code": pick(
        tiny=[_S("small", 32, 1, 2, 64, 64), _S("large", 64, 2, 4, 128, 64)],
        demo=[_S("small", 64, 2, 4, 192, 128), _S("large", 128, 3, 4, 384, 128)],
        gpu=[_S("small", 384, 6, 6, 1536, 512), _S("large", 768, 12, 12, 3072, 512)],
    ),
}
# corpus -> (documents asset, tokenizer asset)
CORPUS_INPUTS = {"facts": ("facts_documents", "facts_tokenizer"), "code": ("code_corpus", "code_tokenizer")}


class LanguageModelConfig(dg.Config):
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
    seed: int = 0
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

    def model_size(self, family_size: ModelSize) -> ModelSize:
        overrides = {f: getattr(self, f) for f in ("d_model", "n_layers", "n_heads", "d_ff", "context_length")
                     if getattr(self, f) is not None}
        return dataclasses.replace(family_size, **overrides)

    def train_config(self, compute: Compute):
        from assets.lm.training import TrainConfig

        return TrainConfig(
            max_steps=self.max_steps, batch_size=self.batch_size, grad_accum_steps=self.grad_accum_steps,
            learning_rate=self.learning_rate, min_lr=self.min_lr, warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay, grad_clip=self.grad_clip, eval_interval=self.eval_interval,
            eval_batches=self.eval_batches, seed=self.seed, device=compute.torch_device(),
            bf16=compute.use_bf16(), compile=compute.use_compile(),
        )


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


def corpus_texts(corpus: str, documents: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(train texts, validation texts); the facts world's protected documents repeat ``duplicate_count`` times."""
    if corpus == "facts":
        from assets.corpora.facts_world import training_texts

        train = training_texts(documents)
    else:
        train = documents.loc[documents["split"] == "train", "text"].tolist()
    return train, documents.loc[documents["split"] == "validation", "text"].tolist()


def _progress_logger(context, max_steps: int, start: float):
    """Log step, losses, throughput and ETA about ten times per run."""
    every = max(1, max_steps // 10)

    def on_log(row: dict) -> None:
        step = int(row["step"])
        if step % every and step != max_steps and not math.isfinite(row.get("val_loss", math.nan)):
            return
        elapsed = time.time() - start
        eta = elapsed / max(step, 1) * (max_steps - step)
        val = row.get("val_loss", math.nan)
        context.log.info(f"step {step}/{max_steps} train_loss {row['train_loss']:.3f}"
                         + (f" val_loss {val:.3f}" if math.isfinite(val) else "")
                         + f" {row.get('tokens_per_s', 0):.0f} tok/s, ETA {eta:.0f}s")

    return on_log


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
        from assets.corpora.tokenization import load_tokenizer
        from assets.lm.family import fit_language_model

        compute.seed_everything(config.seed)
        model_size = config.model_size(size)
        cfg = config.train_config(compute)
        tokenizer_dir = tracking.download_model(tokenizer_record["tokenizer_uri"])
        tokenizer = load_tokenizer(tokenizer_dir)
        train_texts, val_texts = corpus_texts(corpus, documents)
        hardware = compute.hardware()
        params = {"corpus": corpus, "size": model_size.name, **dataclasses.asdict(model_size),
                  **{k: v for k, v in config.model_dump().items() if k not in dataclasses.asdict(model_size)},
                  "tokenizer_uri": tokenizer_record["tokenizer_uri"], "device": hardware["device"]}
        registered = f"lm-{corpus}-{model_size.name}"
        with tracking.start_run(name, dagster_run_id=context.run.run_id, asset_key=name, params=params) as run_id, \
                tempfile.TemporaryDirectory() as tmp:
            if config.nproc_per_node > 1 and not config.checkpoint_dir:
                fitted = _fit_under_torchrun(context, pipes, config.nproc_per_node, model_size, cfg, tokenizer_dir,
                                             train_texts, val_texts, tmp)
            else:
                fitted = fit_language_model(model_size, tokenizer, train_texts, val_texts, cfg, tmp + "/model",
                                            checkpoint_dir=config.checkpoint_dir,
                                            on_log=_progress_logger(context, cfg.max_steps, time.time()))
            tracking.log_metric_history(run_id, fitted.curve.to_dict("records"))
            tracking.log_metrics(run_id, {"final_val_loss": fitted.final_val_loss, "parameters": fitted.parameters})
            model = tracking.log_model(run_id, fitted.checkpoint_dir, registered, aliases=tuple(config.aliases))

        record = {**model, "corpus": corpus, "size": model_size.name, "source": fitted.source,
                  "parameters": fitted.parameters, "non_embedding_parameters": fitted.non_embedding_parameters,
                  "final_val_loss": fitted.final_val_loss, "tokens_seen": fitted.tokens_seen,
                  "train_seconds": fitted.seconds, "vocab_size": fitted.vocab_size,
                  "model_size": dataclasses.asdict(model_size), "hardware": hardware,
                  "tokenizer_uri": tokenizer_record["tokenizer_uri"],
                  "processes": config.nproc_per_node if fitted.source == "trained" else 1}
        yield dg.Output(record, output_name=name, metadata={
            "model_uri": model["model_uri"], "mlflow": dg.MetadataValue.url(model["mlflow_link"]),
            "parameters": fitted.parameters, "final_val_loss": fitted.final_val_loss,
            "tokens_seen": fitted.tokens_seen, "seconds": round(fitted.seconds, 1),
            "loss_curve": _curve_plot(fitted.curve, name, warehouse, context.run.run_id)})
        yield dg.Output(fitted.curve, output_name=f"{name}_curve")

    return _train


def _fit_under_torchrun(context, pipes, nproc: int, size: ModelSize, cfg, tokenizer_dir, train_texts, val_texts,
                        tmp: str):
    """Train in ``nproc`` torchrun processes launched through Dagster Pipes; rank 0 streams its progress here."""
    import os
    import sys
    from pathlib import Path

    import assets
    from assets.lm.distributed import read_result, write_job

    job = write_job(Path(tmp) / "job", size, cfg, tokenizer_dir, train_texts, val_texts)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "pipelines.torchrun_main", str(job)]
    repo = str(Path(assets.__file__).resolve().parents[1])
    threads = str(max(1, (os.cpu_count() or 1) // nproc))  # the ranks share the machine's cores
    context.log.info(f"launching {nproc} training processes: {' '.join(command)}")
    pipes.run(command=command, context=context, cwd=repo,
              env={"OMP_NUM_THREADS": threads, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))})
    return read_result(job)


def _curve_plot(curve: pd.DataFrame, title: str, warehouse: WarehousePaths, run_id: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve["tokens"], curve["train_loss"], label="train", alpha=0.6)
    val = curve.dropna(subset=["val_loss"])
    ax.plot(val["tokens"], val["val_loss"], "o-", label="validation")
    ax.set(title=title, xlabel="tokens", ylabel="loss (nats/token)")
    ax.legend()
    return figure_metadata(fig, f"lm/{title}", warehouse.root, run_id)


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
              tags=stage("evaluation"))
    def _family(context: dg.AssetExecutionContext, warehouse: WarehousePaths, **inputs: Any):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [{k: inputs[n][k] for k in ("size", "parameters", "non_embedding_parameters", "final_val_loss",
                                           "tokens_seen", "train_seconds", "model_uri")} for n in names]
        table = pd.DataFrame(rows).sort_values("parameters", ignore_index=True)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for n in names:
            val = inputs[f"{n}_curve"].dropna(subset=["val_loss"])
            axes[0].plot(val["tokens"], val["val_loss"], "o-", label=inputs[n]["size"])
        axes[0].set(title=f"{corpus}: validation loss", xlabel="tokens", ylabel="nats/token")
        axes[0].legend()
        axes[1].semilogx(table["parameters"], table["final_val_loss"], "o-")
        for r in table.itertuples():
            axes[1].annotate(r.size, (r.parameters, r.final_val_loss))
        axes[1].set(title="final validation loss vs parameters", xlabel="parameters")
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
        ], name=key.path[-1], check_name="family_valid")

    return _family


_assets: list[dg.AssetsDefinition] = []
for _corpus, _sizes in FAMILIES.items():
    _assets += [language_model_asset(_corpus, s) for s in _sizes] + [family_asset(_corpus, _sizes)]

defs = dg.Definitions(assets=_assets)
