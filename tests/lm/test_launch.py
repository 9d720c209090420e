"""Training under torchrun, launched by the asset through Dagster Pipes, matches training in the step process."""

import math

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.jobs import USER_INPUTS

SMALL = dg.AssetSelection.assets("lm_facts_small", "lm_facts_small_curve")
EVERYTHING = list(defs.assets) + list(defs.asset_checks)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The facts world and its tokenizer, materialized once for the module."""
    from resources import default_resources

    resources = default_resources(str(tmp_path_factory.mktemp("warehouse")))
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize(EVERYTHING, selection=SMALL.upstream().required_multi_asset_neighbors() - USER_INPUTS - SMALL,
                          resources=resources, instance=instance).success
    return resources, instance


@pytest.mark.slow
def test_two_torchrun_processes_through_pipes_match_one_process(corpus):
    resources_for, instance = corpus
    single = dg.materialize(EVERYTHING, selection=SMALL, resources=resources_for, instance=instance)
    one = single.output_for_node("lm_facts_small", "lm_facts_small")
    ddp = dg.materialize(EVERYTHING, selection=SMALL, resources=resources_for,
                         instance=instance,
                         run_config={"ops": {"lm_facts_small": {"config": {"nproc_per_node": 2}}}})
    two = ddp.output_for_node("lm_facts_small", "lm_facts_small")
    assert one["processes"] == 1 and two["processes"] == 2
    assert two["model_uri"] == "models:/lm-facts-small/2"  # registered like any other version
    # the same global batches, split over two ranks: the same model up to float rounding
    assert math.isclose(one["final_val_loss"], two["final_val_loss"], rel_tol=1e-4)
    curve_one = single.output_for_node("lm_facts_small", "lm_facts_small_curve")
    curve_two = ddp.output_for_node("lm_facts_small", "lm_facts_small_curve")
    assert len(curve_one) == len(curve_two)
    assert max(abs(a - b) for a, b in zip(curve_one["train_loss"], curve_two["train_loss"], strict=True)) < 1e-3
    # rank 0's progress came back through Pipes into the run's log
    messages = [e.user_message for e in instance.all_logs(ddp.run_id)]
    assert any("trained on 2 processes" in m for m in messages), messages
    assert any(m.startswith("step ") and "ETA" in m for m in messages)
    # the reloaded checkpoint is the one rank 0 wrote
    from assets.lm.model import count_parameters
    from assets.lm.registry import load_model

    model, _ = load_model(two["model_uri"], resources_for["tracking"].resolved_tracking_uri)
    assert count_parameters(model) == two["parameters"]


def test_a_failing_launch_fails_the_step_with_its_error(corpus):
    resources_for, instance = corpus
    # batch 8 over 3 ranks cannot split: every rank refuses, torchrun exits non-zero, the step fails
    bad = dg.materialize(EVERYTHING, selection=SMALL, resources=resources_for,
                         instance=instance, raise_on_error=False,
                         run_config={"ops": {"lm_facts_small": {"config": {"nproc_per_node": 3}}}})
    assert not bad.success
    error = str([e for e in bad.all_events if e.is_step_failure][0].step_failure_data.error)
    assert "External execution process failed" in error
