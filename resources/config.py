"""`StudyConfig`: the base of every study's Dagster Config, so every launchpad field says what it is.

A field's description comes from, in order: its own ``Field(description=...)``; the field of the same name in
a base class (a study that restates ``batch_size = pick(...)`` keeps `assets.lm.config`'s description);
`FIELD_DOCS` for the names every study shares (seed, cpu_threads, temperature, ...). A test asserts that no
field of any asset's Config is left without one.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.lm.config import FIELD_DOCS


def inherited_description(cls: type, name: str) -> str | None:
    """The description of field `name` in the nearest base class that documents it."""
    for base in cls.__mro__[1:]:
        field = getattr(base, "model_fields", {}).get(name)
        if field is not None and field.description:
            return field.description
    return None


class StudyConfig(dg.Config):
    """A study's Config (fields per profile with `resources.profiles.pick`); descriptions filled as above."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        changed = False
        for name, field in cls.model_fields.items():
            if not field.description:
                text = inherited_description(cls, name) or FIELD_DOCS.get(name)
                if text:
                    field.description, changed = text, True
        if changed:
            cls.model_rebuild(force=True)
