"""The reprolab code location: every study's definitions merged with the shared resources and jobs.

Each folder under ``assets/`` with a ``defs.py`` exporting ``defs`` is a study (or a shared room such as
``corpora`` and ``lm``); they are merged here. Nothing imported here may import torch or transformers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import re
import warnings
from pathlib import Path
from typing import Any

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


SCIENCE_IMPORT = re.compile(r"^([ \t]*)from (assets(?:\.\w+)+) import (?:\(([^)]*)\)|([^\n]*))", re.MULTILINE)


@functools.cache
def _spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):  # a name inside a module, not a module
        return None


@functools.cache
def _module_source(name: str) -> str:
    """A module's source text, read from its file without importing it (science modules import torch)."""
    spec = _spec(name)
    return Path(spec.origin).read_text() if spec is not None and spec.origin else ""


def _imported_names(text: str, module_level_only: bool = False) -> dict[str, str]:
    """name bound -> the project module it comes from, for every `from assets... import ...` in `text`
    (`from assets.safety.graders import is_refusal` binds is_refusal to assets.safety.graders, `from assets.chat
    import tables` binds tables to assets.chat.tables), at any depth (lazy imports) or only at column 0."""
    bound = {}
    for indent, module, in_parens, on_line in SCIENCE_IMPORT.findall(text):
        spec = _spec(module)
        if spec is None or (module_level_only and indent):
            continue
        for item in (in_parens or on_line).split("#")[0].split(","):
            name, _, alias = item.strip().partition(" as ")
            if not name:
                continue
            if spec.submodule_search_locations is None:  # a module: its names are functions and classes
                bound[alias or name] = module
            elif _module_source(f"{module}.{name}"):  # a package: the names may be modules
                bound[alias or name] = f"{module}.{name}"
    return bound


def _science_imports(text: str) -> set[str]:
    """The project modules `text` imports, at module level or inside functions (the house's lazy imports)."""
    return set(_imported_names(text).values())


@functools.cache
def _science_closure(name: str) -> frozenset[str]:
    """`name` and every project module it imports, directly or through others."""
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_science_imports(_module_source(module)) - seen)
    return frozenset(seen)


def source_version(fn: Any) -> str:
    """A short hash of an asset function's source and of the source of every science module it runs: the ones
    its body imports or uses from its defs module's imports and, transitively, the ones those import. Change any of them and the asset's code version
    changes, so the UI marks it (and what depends on it) as changed since its last materialization."""
    text = inspect.getsource(fn)
    used = _science_imports(text)
    # names the defs module imports at its top and the body uses (`validity.runs(...)`)
    top = _imported_names(inspect.getsource(inspect.getmodule(fn)), module_level_only=True)
    used |= {module for name, module in top.items() if re.search(rf"\b{re.escape(name)}\b", text)}
    modules = set().union(set(), *(_science_closure(m) for m in used))
    for module in sorted(modules):
        text += _module_source(module)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def source_versions(definitions: list[dg.Definitions]) -> dict[dg.AssetKey, str]:
    """asset key -> "<declared code version>+src.<source_version>" for every study asset."""
    versions = {}
    for d in definitions:
        for a in d.assets or []:
            fn = getattr(getattr(getattr(a, "op", None), "compute_fn", None), "decorated_fn", None)
            if fn is None:
                continue
            digest = source_version(fn)
            for key in a.keys:
                versions[key] = f"{a.specs_by_key[key].code_version or '1'}+src.{digest}"
    return versions


def house_spec(spec: dg.AssetSpec, versions: dict[dg.AssetKey, str] | None = None) -> dg.AssetSpec:
    """Kinds, owners and study/paper tags on every asset, so the UI can filter and the catalog can be found:
    every asset is a Parquet table (a record is a one-row table) in the DuckDB catalog; training assets also
    hold a PyTorch model registered in MLflow."""
    training = spec.tags.get("reprolab/stage") == "training"
    kinds = {"parquet", "pytorch", "mlflow"} if training else {"parquet", "duckdb"}
    tags = {"reprolab/study": spec.group_name or "default"}
    metadata = {}
    if spec.group_name in PAPERS:
        tags["reprolab/paper"], metadata["paper"] = PAPERS[spec.group_name]
    merged = spec.merge_attributes(owners=[o for o in OWNERS if o not in spec.owners], kinds=kinds - set(spec.kinds),
                                   tags={k: v for k, v in tags.items() if k not in spec.tags},
                                   metadata={k: v for k, v in metadata.items() if k not in spec.metadata})
    return merged.replace_attributes(code_version=versions[spec.key]) if versions and spec.key in versions else merged


with warnings.catch_warnings():  # map_asset_specs is a preview API: the mapping is tested (test_definitions)
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _found = study_definitions()
    _versions = source_versions(_found)
    _studies = [d.map_asset_specs(func=functools.partial(house_spec, versions=_versions)) for d in _found]
_asset_keys = [key for d in _studies for a in (d.assets or []) for key in getattr(a, "keys", ())]

defs = dg.Definitions.merge(
    *_studies,
    dg.Definitions(resources=default_resources(), jobs=JOBS, schedules=SCHEDULES, sensors=SENSORS,
                   asset_checks=regression_checks(_asset_keys)),
)
