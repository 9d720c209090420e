"""Multi-assets that can be split: any group and its upstream can be materialized from the CLI and the UI.

A multi-asset computes its outputs together (one world, one trained model and its curve), but a selection such
as ``+group:lm`` or ``lm_facts_small`` alone names only some of them. `yields_selected` wraps the asset's
generator so it still computes everything but emits only the selected outputs and checks; the asset then
declares ``can_subset=True`` and its outputs ``is_required=False`` (Dagster expects every required output).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg


def selected_only(context: dg.AssetExecutionContext, events: Iterator[Any]) -> Iterator[Any]:
    """Pass through the events of selected outputs and checks; drop the rest."""
    op_context = getattr(context, "op_execution_context", context)
    outputs = op_context.selected_output_names
    checks = context.selected_asset_check_keys
    check_names = {k.name for k in checks}
    for event in events:
        if isinstance(event, dg.Output) and event.output_name not in outputs:
            continue
        if isinstance(event, dg.AssetCheckResult):
            key = event.asset_key
            wanted = (dg.AssetCheckKey(key, event.check_name) in checks) if key is not None \
                else event.check_name in check_names
            if not wanted:
                continue
        yield event


def yields_selected(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Decorate a multi-asset's generator (first parameter: the context) to emit only what was selected."""
    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args, **kwargs):
        yield from selected_only(context, fn(context, *args, **kwargs))
    return wrapper

