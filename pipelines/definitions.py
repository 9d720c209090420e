"""The reprolab code location: every study's definitions merged with the shared resources and jobs.

Each folder under ``assets/`` with a ``defs.py`` exporting ``defs`` is a study (or a shared room such as
``corpora`` and ``lm``); they are merged here. Nothing imported here may import torch or transformers.
"""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

import assets
from pipelines.findings_drift import regression_checks
from pipelines.jobs import JOBS, SCHEDULES, SENSORS
from resources import default_resources
from resources.profiles import current_profile

PROFILE = current_profile()  # an unknown REPROLAB_PROFILE fails here, at load, with the valid names


def study_definitions() -> list[dg.Definitions]:
    """The ``defs`` of every ``assets/<study>/defs.py``, in name order."""
    found = []
    for module in sorted(pkgutil.iter_modules(assets.__path__), key=lambda m: m.name):
        if module.ispkg:
            try:
                found.append(importlib.import_module(f"assets.{module.name}.defs").defs)
            except ModuleNotFoundError as exc:
                if exc.name != f"assets.{module.name}.defs":
                    raise
    return found


_studies = study_definitions()
_asset_keys = [key for d in _studies for a in (d.assets or []) for key in getattr(a, "keys", ())]

defs = dg.Definitions.merge(
    *_studies,
    dg.Definitions(resources=default_resources(), jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS,
                   asset_checks=regression_checks(_asset_keys)),
)
