"""Jobs, schedules and sensors of the code location."""

import dagster as dg

# Assets that read a user's files need their path set first: materialize those from the launchpad.
USER_INPUTS = dg.AssetSelection.tag("reprolab/input", "user").downstream()
MAIN_SELECTION = dg.AssetSelection.all() - USER_INPUTS

# The main job: the whole graph with its checks, on the active profile. `make demo` runs it.
main_job = dg.define_asset_job(
    "main",
    selection=MAIN_SELECTION,
    description="Materialize the whole graph (datasets, models, studies, findings) on the active profile.",
)

JOBS = [main_job]
SCHEDULES: list[dg.ScheduleDefinition] = []
SENSORS: list[dg.SensorDefinition] = []
