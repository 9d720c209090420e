"""Profiles: one environment variable picks the defaults of every study's Config.

`REPROLAB_PROFILE` = ``tiny`` (tests, seconds per asset), ``demo`` (default: the whole graph on a 2-core
laptop in minutes) or ``gpu`` (one H100-class GPU, paper-like scale). Defaults are resolved when the
definitions load; every field stays overridable in the launchpad or in run config.
"""

from __future__ import annotations

import os
from typing import TypeVar

PROFILES: tuple[str, ...] = ("tiny", "demo", "gpu")
DEFAULT_PROFILE = "demo"
PROFILE_ENV = "REPROLAB_PROFILE"

T = TypeVar("T")


class SettingError(ValueError):
    """An environment setting (REPROLAB_*) that cannot be used; the message names the variable."""


class UnknownProfileError(SettingError):
    """Raised when REPROLAB_PROFILE names a profile that does not exist."""


def current_profile() -> str:
    """The active profile name, validated against PROFILES."""
    name = os.environ.get(PROFILE_ENV, "").strip() or DEFAULT_PROFILE
    if name not in PROFILES:
        raise UnknownProfileError(
            f"{PROFILE_ENV}={name!r} is not a profile; expected one of: {', '.join(PROFILES)}"
        )
    return name


def pick(*, tiny: T, demo: T, gpu: T | None = None) -> T:
    """The value for the active profile (``gpu`` falls back to ``demo`` when not given).

    Used as a field default in a study's Config, e.g. ``n_people: int = pick(tiny=60, demo=500, gpu=5000)``.
    """
    values = {"tiny": tiny, "demo": demo, "gpu": demo if gpu is None else gpu}
    return values[current_profile()]


def step_threads() -> int:
    """Torch CPU threads for a model step's ``cpu_threads`` default: one on ``tiny`` (tests: tiny models, where a
    second thread only adds overhead), two on ``demo`` and ``gpu`` (the demo runs one step at a time on its 2-core
    reference machine: measured 30 Nov 2026, 9.7 -> 8.8 min for the whole graph, every finding identical; on a
    GPU the setting is ignored). Used as ``cpu_threads: int = step_threads()`` in a study's Config."""
    return pick(tiny=1, demo=2, gpu=2)
