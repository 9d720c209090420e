"""Registry aliases a failed step must not leave moved: each move is recorded, and undone unless its step succeeded.

`move_alias` points an alias at a version and tags that version with the one that held the alias before
(``reprolab.alias_before.<alias>``) and, inside a Dagster step, with the step that moved it
(``reprolab.alias_moved_by.<alias>`` = ``<run id>:<step>:<attempt>``). `undo_failed` puts back every move whose
step attempt logged no STEP_SUCCESS (`restore_alias`: the version and its MLflow run are tagged
``reprolab.failed_step``; the alias goes back to the version before, or is removed when none held it, unless
another run moved it since). `moves_of_run` reads a dead run's moves back from those tags, for `reprolab recover`
when the process died before its resources were torn down. The `resources.tracking.Tracking` resource calls these.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import dagster as dg

ALIAS_BEFORE = "reprolab.alias_before."  # + alias: on a version, which version held that alias before it
ALIAS_RESTORED = "reprolab.alias_restored."  # + alias: the version a failed step's alias was put back on
FAILED_STEP_TAG = "reprolab.failed_step"  # on a version registered by a step that then failed: `<run id>:<step>`
ALIAS_MOVED_BY = "reprolab.alias_moved_by."  # + alias: the Dagster step that moved it: `<run id>:<step>:<attempt>`


class AliasMove(NamedTuple):
    """An alias a Dagster step pointed at a version it registered, and the version that held it before."""

    registered_name: str
    alias: str
    version: str
    before: str | None
    dagster_run_id: str
    step_key: str
    attempt: int  # the step's retry number (0: first attempt)


def alias_holder(client: Any, registered_name: str, alias: str) -> str | None:
    """The version ``alias`` of ``registered_name`` points at, or None (no such alias or model)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(registered_name, alias).version)
    except MlflowException:
        return None


def _current_step() -> tuple[str, str, int] | None:
    """(Dagster run id, step key, retry number) of the step executing in this thread, or None outside one."""
    from dagster._core.execution.context.compute import current_execution_context

    ctx = current_execution_context.get()
    if ctx is None:
        return None
    op = ctx.op_execution_context
    return op.run.run_id, op.get_step_execution_context().step.key, op.retry_number


def _succeeded_attempts(instance: dg.DagsterInstance, run_ids: set[str]) -> dict[tuple[str, str], int]:
    """(run id, step key) -> the attempt (retry number) that succeeded, for each step of the runs that did."""
    kinds = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_RESTARTED}
    restarts: dict[tuple[str, str], int] = {}
    succeeded: dict[tuple[str, str], int] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=kinds):
            key = (run_id, entry.step_key or "")
            if entry.dagster_event_type == dg.DagsterEventType.STEP_RESTARTED:
                restarts[key] = restarts.get(key, 0) + 1
            else:
                succeeded[key] = restarts.get(key, 0)
    return succeeded


def move_alias(client: Any, registered_name: str, alias: str, version: str | int) -> AliasMove | None:
    """Point ``alias`` at ``version``, tagging that version with the one that held it before (a version number or
    ``none``); inside a Dagster step also with the step, and return the move (None outside a step, or when the
    alias already pointed there)."""
    version = str(version)
    before = alias_holder(client, registered_name, alias)
    if before == version:
        return None
    client.set_model_version_tag(registered_name, version, f"{ALIAS_BEFORE}{alias}", before or "none")
    client.set_registered_model_alias(registered_name, alias, version)
    step = _current_step()
    if step is None:
        return None
    run_id, step_key, attempt = step
    client.set_model_version_tag(registered_name, version, f"{ALIAS_MOVED_BY}{alias}", f"{run_id}:{step_key}:{attempt}")
    return AliasMove(registered_name, alias, version, before, *step)


def restore_alias(client: Any, move: AliasMove) -> None:
    """Undo ``move`` of a step that failed: tag its version (and MLflow run) as made by a failed step and, if the
    alias still points at it, put the alias back on the version that held it before (or remove it when none did)."""
    failed = f"{move.dagster_run_id}:{move.step_key}"
    client.set_model_version_tag(move.registered_name, move.version, FAILED_STEP_TAG, failed)
    run_id = client.get_model_version(move.registered_name, move.version).run_id
    if run_id:  # the MLflow run may have ended FINISHED (the step failed after it): its tag says otherwise
        client.set_tag(run_id, FAILED_STEP_TAG, failed)
    if alias_holder(client, move.registered_name, move.alias) != move.version:
        return  # moved on since (another run): not ours to put back
    if move.before is None:
        client.delete_registered_model_alias(move.registered_name, move.alias)
    else:
        client.set_registered_model_alias(move.registered_name, move.alias, move.before)
    client.set_model_version_tag(move.registered_name, move.version, f"{ALIAS_RESTORED}{move.alias}",
                                 move.before or "none")


def undo_failed(client: Any, instance: dg.DagsterInstance, moves: list[AliasMove],
                warn: Any = None) -> list[AliasMove]:
    """Restore each of ``moves`` (oldest first) whose step attempt did not log STEP_SUCCESS; those undone."""
    succeeded = _succeeded_attempts(instance, {m.dagster_run_id for m in moves})
    undone = []
    for move in reversed(moves):  # newest first: a step that moved an alias twice goes back to the start
        if succeeded.get((move.dagster_run_id, move.step_key)) == move.attempt:
            continue
        try:
            restore_alias(client, move)
            undone.append(move)
        except Exception as exc:  # a store gone away must not hide the step's own error
            if warn is not None:
                warn(f"could not put alias `{move.alias}` of {move.registered_name} back on version "
                     f"{move.before or '(none)'}: {str(exc)[:300]}")
    return undone


def moves_of_run(client: Any, dagster_run_id: str) -> list[AliasMove]:
    """Every alias move a step of ``dagster_run_id`` recorded on a version it registered, read back from the
    versions' tags (``reprolab.alias_moved_by.<alias>``, ``reprolab.alias_before.<alias>``)."""
    versions = client.search_model_versions(f"tags.`dagster.run_id` = '{dagster_run_id}'")
    moves = []
    for v in sorted(versions, key=lambda v: (v.name, int(v.version))):
        for key, value in v.tags.items():
            if key.startswith(ALIAS_MOVED_BY) and value.startswith(f"{dagster_run_id}:"):
                alias = key.removeprefix(ALIAS_MOVED_BY)
                _, step_key, attempt = value.rsplit(":", 2)
                before = v.tags.get(f"{ALIAS_BEFORE}{alias}", "none")
                moves.append(AliasMove(v.name, alias, str(v.version), None if before == "none" else before,
                                       dagster_run_id, step_key, int(attempt)))
    return moves
