"""Where an asset sits in the lab's life cycle, as a tag the jobs and schedules select on.

- ``data``: corpora and tokenizers (rebuilt by hand, or with the whole graph by the main job: the training
  job selects the ``training`` assets only and reads the data as it is);
- ``training``: models (manual, or the weekly training schedule, off by default);
- ``evaluation``: everything computed from registered models and data — probes, detectors and attacks,
  attributions, summaries and findings — which the nightly schedule re-materializes.
"""

STAGE_TAG = "reprolab/stage"
STAGES = ("data", "training", "evaluation")


def stage(name: str) -> dict[str, str]:
    """The tags that put an asset in stage ``name``."""
    if name not in STAGES:
        raise ValueError(f"stage {name!r} is not one of {STAGES}")
    return {STAGE_TAG: name}
