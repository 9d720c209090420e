"""Jobs and schedules: the whole graph (`make demo`), the nightly re-evaluation, the weekly training.

The nightly schedule re-materializes the evaluation side of the graph (assets tagged
``reprolab/stage=evaluation``) against the currently registered models; history accumulates in the catalog's
``_history`` views. Training stays manual, or weekly when that schedule is switched on in the UI.
Cron and timezone come from ``REPROLAB_NIGHTLY_CRON`` / ``REPROLAB_TRAINING_CRON`` / ``REPROLAB_TIMEZONE``.
"""

import os
import zoneinfo

import dagster as dg

from pipelines.recovery import dead_run_sensor
from resources.profiles import SettingError
from resources.stages import STAGE_TAG
from resources.warehouse import run_tags

# Assets that read a user's files need their path set first: materialize those from the launchpad.
USER_INPUTS = dg.AssetSelection.tag("reprolab/input", "user").downstream()
MAIN_SELECTION = dg.AssetSelection.all() - USER_INPUTS
EVALUATION = dg.AssetSelection.tag(STAGE_TAG, "evaluation") - USER_INPUTS
TRAINING = dg.AssetSelection.tag(STAGE_TAG, "training") - USER_INPUTS

main_job = dg.define_asset_job(
    "main", selection=MAIN_SELECTION, tags=run_tags(),
    description="Materialize the whole graph (datasets, models, studies, findings) on the active profile.")
nightly_job = dg.define_asset_job(
    "nightly_evaluation", selection=EVALUATION, tags=run_tags(),
    description="Re-evaluate probes, detectors, attacks, attributions and findings against the registered models.")
training_job = dg.define_asset_job(
    "training", selection=TRAINING, tags=run_tags(), description="Retrain the model family and the studies' models.")



def timezone_setting() -> str:
    """REPROLAB_TIMEZONE (default UTC), refused with a one-line SettingError unless it is an IANA time zone."""
    name = os.environ.get("REPROLAB_TIMEZONE", "UTC")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingError(f"REPROLAB_TIMEZONE={name!r} is not a time zone; expected an IANA name such as UTC "
                           "or Europe/Berlin") from exc
    return name


def schedule(variable: str, default_cron: str, **kwargs) -> dg.ScheduleDefinition:
    """A schedule whose cron string comes from ``variable`` (default ``default_cron``), in REPROLAB_TIMEZONE; a
    cron string Dagster refuses is a one-line SettingError naming the variable, not a traceback at load."""
    cron = os.environ.get(variable, default_cron)
    try:
        return dg.ScheduleDefinition(cron_schedule=cron, execution_timezone=timezone_setting(), **kwargs)
    except dg.DagsterInvalidDefinitionError as exc:
        raise SettingError(f"{variable}={cron!r} is not a cron schedule; expected five fields, e.g. "
                           f"{default_cron!r}") from exc


nightly_schedule = schedule(
    "REPROLAB_NIGHTLY_CRON", "0 2 * * *", name="nightly_evaluation_schedule", job=nightly_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: re-materialize the evaluation side of the graph.")
training_schedule = schedule(
    "REPROLAB_TRAINING_CRON", "0 3 * * 0", name="weekly_training_schedule", job=training_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly retraining; off by default (switch it on in the UI).")

JOBS = [main_job, nightly_job, training_job]
SCHEDULES = [nightly_schedule, training_schedule]
SENSORS: list[dg.SensorDefinition] = [dead_run_sensor]
