"""Dagster resources shared by every study: warehouse, tracking, compute; plus profiles and helpers."""

from __future__ import annotations

from typing import Any


def default_resources(warehouse_root: str | None = None) -> dict[str, Any]:
    """The resources every asset may ask for, all rooted at one warehouse folder."""
    import dagster as dg

    from resources.compute import Compute
    from resources.settings import default_warehouse_root
    from resources.tracking import Tracking
    from resources.warehouse import Warehouse, WarehousePaths

    root = warehouse_root or default_warehouse_root()
    return {
        "pipes": dg.PipesSubprocessClient(),  # external processes (torchrun) with logs and metadata sent back
        "io_manager": Warehouse(root=root),
        "warehouse": WarehousePaths(root=root),
        "tracking": Tracking(warehouse_root=root),
        "compute": Compute(),
    }
