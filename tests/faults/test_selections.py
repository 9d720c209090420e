"""Selections users try: any group with its upstream, and one output of a multi-asset alone (issue 15, 8)."""

import dagster as dg
import pytest

from pipelines.definitions import defs
from resources import default_resources

GRAPH = defs.resolve_asset_graph()
GROUPS = sorted({GRAPH.get(k).group_name for k in GRAPH.get_all_asset_keys()})


@pytest.mark.parametrize("selection", [s for g in GROUPS for s in (f"+group:{g}", f"group:{g}")])
def test_every_group_and_its_upstream_can_be_selected(selection):
    keys = dg.AssetSelection.from_string(selection).resolve(GRAPH)
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.get_subset(asset_selection=keys)  # raised DagsterInvalidSubsetError on multi-assets before


def test_every_single_asset_can_be_selected_alone():
    job = defs.resolve_implicit_global_asset_job_def()
    failed = []
    for key in GRAPH.get_all_asset_keys():
        if GRAPH.get(key).is_materializable:
            try:
                job.get_subset(asset_selection={key})
            except dg.DagsterInvalidSubsetError as exc:
                failed.append(f"{key.to_user_string()}: {str(exc)[:120]}")
    assert not failed, failed


def test_one_output_of_a_multi_asset_materializes_alone(warehouse_root):
    """`--select facts_documents` then `--select lm_facts_small`: each emits only what was selected."""
    from assets.corpora.defs import facts_tokenizer, facts_world
    from assets.lm.defs import defs as lm_defs

    instance = dg.DagsterInstance.ephemeral()
    resources = default_resources(str(warehouse_root))
    first = dg.materialize([facts_world, facts_tokenizer], selection=["facts_world", "facts_documents",
                                                                     "facts_tokenizer"],
                           resources=resources, instance=instance)
    assert first.success
    done = {e.asset_key.to_user_string() for e in first.get_asset_materialization_events()}
    assert done == {"facts_world", "facts_documents", "facts_tokenizer"}  # not entities, facts, token truth

    lm = next(a for a in lm_defs.assets if dg.AssetKey("lm_facts_small") in a.keys)
    second = dg.materialize([lm, facts_world, facts_tokenizer], selection=["lm_facts_small"], resources=resources,
                            instance=instance)
    assert second.success
    done = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    assert done == {"lm_facts_small"}
    assert second.asset_value("lm_facts_small")["model_uri"].startswith("models:/lm-facts-small/")
