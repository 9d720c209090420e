"""The run config `reprolab demo --config FILE` runs with: the console log level, the user's YAML files merged
over it, and the whole checked before a run starts (Dagster's schema, then what Dagster's schema cannot say, such
as the compute resource's device), with errors a person can read: one line per problem, no dump of the schema.
"""

from __future__ import annotations

from pathlib import Path


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
        _compute_config_valid(dg.validate_run_config(job, run_config))  # env vars resolved, defaults filled
    except dg.DagsterInvalidConfigError as exc:
        raise ValueError(f"--config {', '.join(paths or [])}: not a run config of job '{job.name}': "
                         + "; ".join(_config_error(e, list(job.graph.node_dict)) for e in exc.errors)) from exc
    except ValueError as exc:  # pydantic's ValidationError of the compute resource's fields
        raise ValueError(f"--config {', '.join(paths or [])}: resource `compute`: {exc}") from exc
    return run_config


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
    checks them (its device, e.g.), before a run starts: Dagster's schema knows only that they are strings."""
    from resources.compute import Compute

    Compute(**run_config.get("resources", {}).get("compute", {}).get("config", {})).check_device()
