"""Regression checks: each study's headline metrics, this materialization against the previous one.

For every ``[<study>, "findings"]`` asset in the code location a check compares ``ours`` per metric between
the latest and the previous materialization (read from the warehouse's Parquet history: the file the asset's
latest materialization recorded, and the one before it that is a materialization, never a file a failed step
left). A relative change
beyond the tolerance fails with WARN severity; a metric that stops being a finite number (finite in the previous
materialization, not now) fails with ERROR. A metric that was never finite is a "not comparable" finding, listed
in the metadata but not an error. A metric of the previous materialization missing from the latest (dropped or
renamed) fails with WARN and is listed as lost. Both values are in the metadata.
"""

import math

import dagster as dg
import pandas as pd

from resources.tables import read_table
from resources.warehouse import WarehousePaths

DEFAULT_TOLERANCE = 0.25  # relative change of a headline metric that is worth a look


def _finite(v) -> bool:
    return v is not None and not pd.isna(v) and math.isfinite(float(v))


def compare_findings(previous: pd.DataFrame, latest: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """One row per metric of either materialization: previous and latest ``ours``, relative change, whether it
    regressed, and whether it is ``lost`` (in the previous materialization, not in the latest)."""
    merged = latest[["metric", "ours"]].merge(previous[["metric", "ours"]], on="metric", how="outer",
                                              suffixes=("", "_previous"), indicator=True)
    merged["lost"] = merged.pop("_merge") == "right_only"
    merged = merged.rename(columns={"ours": "latest", "ours_previous": "previous"})

    def relative(row) -> float:
        if pd.isna(row["previous"]):
            return 0.0
        scale = max(abs(row["previous"]), 1e-12)
        return abs(row["latest"] - row["previous"]) / scale

    merged["relative_change"] = merged.apply(relative, axis=1) if len(merged) else []
    merged["finite"] = merged["latest"].map(_finite)
    # broken: was a finite number last time and is not now (a "not comparable" NaN from the start is a finding)
    merged["broken"] = ~merged["finite"] & merged["previous"].map(_finite) & ~merged["lost"]
    merged["changed"] = (merged["relative_change"] > tolerance) & ~merged["lost"]
    return merged


def findings_regression_check(key: dg.AssetKey, tolerance: float = DEFAULT_TOLERANCE) -> dg.AssetChecksDefinition:
    study = key.path[0]

    @dg.asset_check(asset=key, name="headline_metrics_stable", blocking=False,
                    description=f"Headline metrics of {study} moved less than {tolerance:.0%} since the previous "
                                "materialization (WARN); every metric is a finite number (ERROR).")
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehousePaths) -> dg.AssetCheckResult:
        files = warehouse.table_files(study, key.path[-1])  # in a shared lab, the object store's files too
        if not files:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={"error": f"no materialization of {key.to_user_string()}"})
        files = files[:checked_file_index(context.instance, key, files) + 1]  # not a newer one written since
        latest = read_table(files[-1])
        before = previous_file_index(context.instance, key, files)
        previous = read_table(files[before]) if before is not None else latest.iloc[0:0]
        table = compare_findings(previous, latest, tolerance)
        broken = table.loc[table["broken"], "metric"].tolist()
        changed = table.loc[table["changed"], "metric"].tolist()
        lost = table.loc[table["lost"], "metric"].tolist()
        metadata = {"compared_with": files[before].stem if before is not None else "nothing (first materialization)",
                    "tolerance": tolerance, "changed": dg.MetadataValue.json(changed),
                    "lost": dg.MetadataValue.json(lost),
                    "not_finite": dg.MetadataValue.json(table.loc[~table["finite"] & ~table["lost"], "metric"].tolist()),
                    "metrics": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4g"))}
        if broken:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={**metadata, "not_finite": dg.MetadataValue.json(broken)})
        return dg.AssetCheckResult(passed=not (changed or lost), severity=dg.AssetCheckSeverity.WARN,
                                   metadata=metadata)

    return _check


def checked_file_index(instance: dg.DagsterInstance, key: dg.AssetKey, files: list) -> int:
    """The index in ``files`` (time-sorted) of the file the asset's latest materialization recorded (its
    ``path`` metadata, matched by materialization id, so an object-store copy matches too): the check compares
    that materialization, not a newer file another writer may have added since. The newest file when the
    instance recorded none of them."""
    from pathlib import Path

    event = instance.get_latest_materialization_event(key)
    entry = event.asset_materialization.metadata.get("path") if event and event.asset_materialization else None
    stems = [Path(str(f)).stem for f in files]
    stem = Path(str(entry.value)).stem if entry is not None else None
    return stems.index(stem) if stem in stems else len(files) - 1


def previous_file_index(instance: dg.DagsterInstance, key: dg.AssetKey, files: list) -> int | None:
    """The index of the file the check compares ``files[-1]`` with: the newest earlier one that is a
    materialization, None when there is none. A file whose run this instance knows but which recorded no
    materialization of it is skipped: a step that failed after writing it (the IO manager now removes such a file,
    but one written before that, or by a process killed between writing and recording, stays on disk). A file of a
    run this instance never saw (another machine of a shared lab, an earlier instance) counts."""
    for index in range(len(files) - 2, -1, -1):
        if not _left_by_a_failed_step(instance, key, files[index]):
            return index
    return None


def _left_by_a_failed_step(instance: dg.DagsterInstance, key: dg.AssetKey, path) -> bool:
    from pathlib import Path

    import pyarrow.parquet as pq
    from dagster import DagsterEventType

    try:
        run_ids = pq.read_table(path, columns=["run_id"]).column("run_id").unique().to_pylist()
    except Exception:  # unreadable, or no lineage: not this check's business, read_table will say
        return False
    if len(run_ids) != 1 or instance.get_run_record_by_id(str(run_ids[0])) is None:
        return False
    recorded = set()
    for record in instance.get_records_for_run(str(run_ids[0]), of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None or materialization.asset_key != key:
            continue
        metadata = materialization.metadata
        entry = metadata.get("materialization_id") or metadata.get("path")
        recorded.add(Path(str(getattr(entry, "value", entry))).stem)
    return Path(str(path)).stem not in recorded


def regression_checks(asset_keys) -> list[dg.AssetChecksDefinition]:
    """A regression check for every ``[<study>, "findings"]`` asset among ``asset_keys``."""
    return [findings_regression_check(k) for k in sorted(asset_keys, key=lambda k: k.path)
            if len(k.path) == 2 and k.path[-1] == "findings"]
