"""The run config `reprolab demo --config FILE` runs with: the console log level, the user's YAML files merged
over it, and the whole checked before a run starts (Dagster's schema, then what Dagster's schema cannot say, such
as the compute resource's device and whether the paths an op's config names exist), with errors a person can
read: one line per problem, no dump of the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

# Op config fields that name a path the user gives a study to read (never one it writes), found by name in every
# op's config: a checkpoint, a save_pretrained folder with its config.json (lm_* `checkpoint_dir`,
# uncertainty_tokens `facts_small_checkpoint` ...), and a file or folder that must exist (corpus_path,
# user_corpus `path`, safety_results `benchmark_files`).
CHECKPOINT_FIELDS = re.compile(r"^(checkpoint_dir|\w+_checkpoint)$")
PATH_FIELDS = re.compile(r"^(path|\w+_path|\w+_files)$")


def _merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base``, nested dictionaries key by key (later files win)."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def demo_run_config(job, paths: list[str] | None, verbose: bool = False) -> dict:
    """The demo's Dagster run config: Dagster's console log at INFO (the studies' progress messages without the
    event noise; all of it with ``verbose``), with each YAML file in ``paths`` merged over it (later files win),
    e.g. resources (``resources: {compute: {config: {bf16: "on"}}}``) or an asset's config (``ops:``). Raises
    ValueError naming the file and Dagster's message when the result is not a valid run config of ``job``."""
    import dagster as dg
    import yaml

    run_config: dict = {} if verbose else {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    for path in paths or []:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"--config {path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {path}: expected a YAML mapping (a Dagster run config), got "
                             f"{type(loaded).__name__}")
        run_config = _merge(run_config, loaded)
    try:
        processed = dg.validate_run_config(job, run_config)  # env vars resolved, defaults filled
        _compute_config_valid(processed)
    except dg.DagsterInvalidConfigError as exc:
        raise ValueError(f"--config {', '.join(paths or [])}: not a run config of job '{job.name}': "
                         + "; ".join(_config_error(e, list(job.graph.node_dict)) for e in exc.errors)) from exc
    except ValueError as exc:  # pydantic's ValidationError of the compute resource's fields
        raise ValueError(f"--config {', '.join(paths or [])}: resource `compute`: {exc}") from exc
    missing = missing_paths(processed)
    if missing:
        raise ValueError(f"--config {', '.join(paths or [])}: " + "; ".join(missing))
    return run_config


def _op_configs(ops: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """(op name, its config) for every op of a processed run config's ``ops``, those inside graphs included."""
    for name, entry in (ops or {}).items():
        if isinstance(entry, dict):
            if isinstance(entry.get("config"), dict):
                yield prefix + name, entry["config"]
            yield from _op_configs(entry.get("ops") or {}, f"{prefix}{name}.")


def missing_paths(processed: dict) -> list[str]:
    """What is wrong with each path an op's config names (CHECKPOINT_FIELDS, PATH_FIELDS; relative paths are
    read from the working directory, as the run reads them): "op `lm_facts_small` field `checkpoint_dir`:
    '/x' does not exist", one entry per problem, none when every such path is there."""
    problems = []
    for op, config in _op_configs(processed.get("ops", {})):
        for field, value in config.items():
            checkpoint, path = CHECKPOINT_FIELDS.match(field), PATH_FIELDS.match(field)
            if not (checkpoint or path):
                continue
            for given in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                if not isinstance(given, str) or not given or "://" in given or given.startswith(("models:", "runs:")):
                    continue  # a registry or remote URI (uncertainty's *_checkpoint fields take models:/...)
                where = Path(given)
                why = ("does not exist" if not where.exists() else
                       "is not a checkpoint directory (no config.json)" if checkpoint
                       and not (where / "config.json").is_file() else "")
                if why:
                    problems.append(f"op `{op}` field `{field}`: {given!r} {why}")
    return problems


def _config_error(error, op_names: list[str]) -> str:
    """One Dagster config error without its dump of the whole expected schema, with a "did you mean" for an
    unknown entry."""
    import difflib

    message = error.message.split(' Expected: "')[0]
    field = getattr(error.error_data, "field_name", None)
    close = difflib.get_close_matches(field, op_names, n=3) if isinstance(field, str) else []
    return message + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")


def _compute_config_valid(run_config: dict) -> None:
    """The compute resource's fields (of the processed config: `{env: VAR}` resolved) checked as the resource
    checks them before a run starts (Dagster's schema knows only that they are strings): the device's spelling,
    and for a CUDA device that CUDA is available here (torch is imported only then)."""
    from resources.compute import Compute

    compute = Compute(**run_config.get("resources", {}).get("compute", {}).get("config", {}))
    compute.check_device()
    if compute.device.startswith("cuda"):
        compute.torch_device()
