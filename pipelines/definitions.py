"""The reprolab code location: every study's definitions merged with the shared resources and jobs.

Each folder under ``assets/`` with a ``defs.py`` exporting ``defs`` is a study (or a shared room such as
``corpora`` and ``lm``); they are merged here. Nothing imported here may import torch or transformers.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

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


# Where each room's work comes from, shown as an asset tag in the UI (the room itself is the group).
PAPERS = {  # room -> (tag value, citation)
    "parity": ("barak2022-hidden-progress", "Barak et al. 2022, Hidden progress in deep learning: SGD learns "
               "parities near the computational limit"),
    "sgd_noise": ("vyas2023-sgd-noise", "Vyas et al. 2023, Beyond implicit bias: the insignificance of SGD noise "
                  "in online learning"),
    "scaling": ("muennighoff2023-data-constrained", "Muennighoff et al. 2023, Scaling data-constrained language "
                "models"),
    "uncertainty": ("ahdritz2024-knowable", "Ahdritz et al. 2024, Distinguishing the knowable from the unknowable "
                    "with language models"),
    "watermark": ("zhang2023-watermarks-sand", "Zhang et al. 2023, Watermarks in the sand: impossibility of strong "
                  "watermarking for generative models"),
    "royalties": ("wang2024-copyright-royalties", "Wang et al. 2024, An economic solution to copyright challenges "
                  "of generative AI"),
    "naf": ("vyas2023-near-access-free", "Vyas, Kakade, Barak 2023, On provable copyright protection for "
            "generative models"),
    "safety": ("openai2024-o1-system-card", "OpenAI 2024, OpenAI o1 system card"),
    "alignment": ("guan2024-deliberative", "Guan et al. 2024, Deliberative alignment: reasoning enables safer "
                  "language models"),
    "robustness": ("zaremba2025-compute-robustness", "Zaremba et al. 2025, Trading inference-time compute for "
                   "adversarial robustness"),
}
OWNERS = ["team:reprolab"]


def house_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Kinds, owners and study/paper tags on every asset, so the UI can filter and the catalog can be found:
    every asset is a Parquet table (a record is a one-row table) in the DuckDB catalog; training assets also
    hold a PyTorch model registered in MLflow."""
    training = spec.tags.get("reprolab/stage") == "training"
    kinds = {"parquet", "pytorch", "mlflow"} if training else {"parquet", "duckdb"}
    tags = {"reprolab/study": spec.group_name or "default"}
    metadata = {}
    if spec.group_name in PAPERS:
        tags["reprolab/paper"], metadata["paper"] = PAPERS[spec.group_name]
    return spec.merge_attributes(owners=[o for o in OWNERS if o not in spec.owners], kinds=kinds - set(spec.kinds),
                                 tags={k: v for k, v in tags.items() if k not in spec.tags},
                                 metadata={k: v for k, v in metadata.items() if k not in spec.metadata})


with warnings.catch_warnings():  # map_asset_specs is a preview API: the mapping is tested (test_definitions)
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _studies = [d.map_asset_specs(func=house_spec) for d in study_definitions()]
_asset_keys = [key for d in _studies for a in (d.assets or []) for key in getattr(a, "keys", ())]

defs = dg.Definitions.merge(
    *_studies,
    dg.Definitions(resources=default_resources(), jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS,
                   asset_checks=regression_checks(_asset_keys)),
)
