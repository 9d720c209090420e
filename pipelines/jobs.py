"""Jobs, schedules and sensors of the code location."""

from __future__ import annotations

import dagster as dg

# The main job: the whole graph with its checks, on the active profile. `make demo` runs it.
main_job = dg.define_asset_job(
    "main",
    # assets that read a user's files need their path set first: materialize those from the launchpad
    selection=dg.AssetSelection.all() - dg.AssetSelection.tag("reprolab/input", "user").downstream(),
    description="Materialize the whole graph (datasets, models, studies, findings) on the active profile.",
)

JOBS = [main_job]
SCHEDULES: list[dg.ScheduleDefinition] = []
SENSORS: list[dg.SensorDefinition] = []
