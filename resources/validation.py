"""Great Expectations 1.x (GX Core, ephemeral context) as Dagster asset checks.

``gx_check(df, expectations)`` validates a DataFrame against a list of GX expectations and returns an
``AssetCheckResult`` whose metadata lists every failed expectation with its observed value. GX is imported
lazily (it is slow to import) and its usage statistics are switched off.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd


def expectations():
    """The ``great_expectations.expectations`` module, imported on first use."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations.expectations as gxe

    return gxe


def _describe(expectation_config: Any) -> str:
    kwargs = {k: v for k, v in expectation_config.kwargs.items() if k not in ("batch_id",)}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{expectation_config.type}({args})"


def validate_frame(df: pd.DataFrame, expectation_list: Sequence[Any], name: str = "table") -> tuple[bool, list[dict]]:
    """Run the expectations on ``df``; returns (success, one dict per expectation with its outcome)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # keep step logs readable
    suffix = uuid.uuid4().hex[:8]
    source = context.data_sources.add_pandas(f"{name}-{suffix}")
    asset = source.add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name=f"{name}-suite-{suffix}", expectations=list(expectation_list))
    result = batch.validate(suite)
    outcomes = []
    for r in result.results:
        observed = r.result.get("observed_value")
        if observed is None and "unexpected_count" in r.result:
            observed = {
                "unexpected_count": r.result.get("unexpected_count"),
                "unexpected_percent": r.result.get("unexpected_percent"),
                "partial_unexpected_list": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
            }
        outcomes.append({"expectation": _describe(r.expectation_config), "success": bool(r.success),
                         "observed": observed})
    return bool(result.success), outcomes


def gx_check(
    df: pd.DataFrame,
    expectation_list: Sequence[Any],
    *,
    name: str = "table",
    asset_key: dg.AssetKey | None = None,
    check_name: str | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """Validate ``df`` and return an AssetCheckResult naming each failed expectation and what it observed."""
    success, outcomes = validate_frame(df, expectation_list, name=name)
    failed = [o for o in outcomes if not o["success"]]
    metadata: dict[str, Any] = {
        "rows": len(df),
        "expectations": len(outcomes),
        "failed": len(failed),
    }
    if failed:
        metadata["failed_expectations"] = dg.MetadataValue.json(
            [{"expectation": o["expectation"], "observed": _jsonable(o["observed"])} for o in failed]
        )
        metadata["summary"] = dg.MetadataValue.md("\n".join(f"- `{o['expectation']}` observed `{o['observed']}`" for o in failed))
    return dg.AssetCheckResult(passed=success, severity=severity, metadata=metadata,
                               asset_key=asset_key, check_name=check_name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)
