"""Train one model of the family in a process of its own, under torchrun for several processes (DDP).

    torchrun --standalone --nproc-per-node N -m pipelines.torchrun_main JOB_DIR

``JOB_DIR/job.json`` (written by `assets.lm.distributed.write_job`) names the model size, the `TrainConfig`, the tokenizer directory
and the texts file. Every rank trains its slice of each global batch (see `assets.lm.training`); rank 0 writes
the checkpoint to ``JOB_DIR/model``, the curve to ``JOB_DIR/curve.csv`` and the numbers to
``JOB_DIR/result.json``, which `assets.lm.distributed.read_result` turns back into a `FittedModel`. When Dagster launched the
process through Pipes, rank 0 also streams progress to the run's log and reports the numbers as metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from assets.lm.model import ModelSize
from assets.lm.training import TrainConfig


def _pipes():
    """The Dagster Pipes context on rank 0 when Dagster launched us, else a no-op."""
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes  # ships with dagster

    from assets.lm.distributed import is_main_process

    if is_main_process() and DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ:
        return open_dagster_pipes()
    return contextlib.nullcontext(None)


def main(argv: list[str] | None = None) -> int:
    from assets.corpora.tokenization import load_tokenizer
    from assets.lm.distributed import is_main_process
    from assets.lm.family import fit_language_model

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    job = Path(args[0])
    spec = json.loads((job / "job.json").read_text())
    texts = json.loads((job / "texts.json").read_text())
    size, cfg = ModelSize(**spec["size"]), TrainConfig(**spec["train"])
    tokenizer = load_tokenizer(spec["tokenizer_dir"])
    with _pipes() as pipes:
        start, every = time.time(), max(1, cfg.max_steps // 10)

        def on_log(row: dict[str, Any]) -> None:
            if pipes is not None and (row["step"] % every == 0 or row["step"] == cfg.max_steps):
                eta = (time.time() - start) / row["step"] * (cfg.max_steps - row["step"])
                pipes.log.info(f"step {row['step']}/{cfg.max_steps} train_loss {row['train_loss']:.3f} "
                               f"{row['tokens_per_s']:.0f} tok/s, ETA {eta:.0f}s")

        fitted = fit_language_model(size, tokenizer, texts["train"], texts["validation"], cfg, job / "model",
                                    on_log=on_log)
        if is_main_process():
            world = int(os.environ.get("WORLD_SIZE", "1"))
            fitted.curve.to_csv(job / "curve.csv", index=False)
            numbers = {f.name: getattr(fitted, f.name) for f in dataclasses.fields(fitted)
                       if f.name not in ("checkpoint_dir", "curve")}
            (job / "result.json").write_text(json.dumps(numbers))
            if pipes is not None:
                pipes.log.info(f"trained on {world} processes: val loss {fitted.final_val_loss:.4f}")
                pipes.report_custom_message({"world_size": world, "final_val_loss": fitted.final_val_loss})
    return 0


if __name__ == "__main__":
    sys.exit(main())
