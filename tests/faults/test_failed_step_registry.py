"""A training step that registers its model and then fails leaves the MLflow alias `current` where it was.

Found on a copy of the demo warehouse: `scaling-s-u4096-e1` had `current` -> version 2, made by a FAILED Dagster
run (the step raised after registering), while Dagster's record still named version 1, so
`reprolab serve models:/...@current` served the failed run's model. The Tracking resource's teardown now puts the
alias back on the version that held it before (or removes it when none did) and tags the failed step's version.
"""

import dagster as dg
import pytest
import torch
from mlflow.exceptions import MlflowException
from pydantic import Field

from resources.aliases import ALIAS_BEFORE, ALIAS_RESTORED, FAILED_STEP_TAG
from resources.tracking import Tracking

NAME = "toy-failing-step"


class ToyConfig(dg.Config):
    fail: bool = Field(default=False, description="raise after registering (a plot or metadata failing)")


def _register(context: dg.AssetExecutionContext, tracking: Tracking, run_name: str) -> dict:
    """Train nothing: log a tiny state dict as a model version of NAME with alias `current`, as a room does."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp, tracking.start_run(
            run_name, dagster_run_id=context.run.run_id, asset_key=context.asset_key.to_user_string()) as run_id:
        torch.save({"w": torch.arange(3.0)}, Path(tmp) / "weights.pt")
        return tracking.log_model(run_id, tmp, NAME, aliases=("current",))


@dg.asset(group_name="fault_registry")
def toy_model(context: dg.AssetExecutionContext, config: ToyConfig, tracking: Tracking) -> dict:
    """Registers a version with alias `current`; raises afterwards when the config says so."""
    record = _register(context, tracking, "toy")
    if config.fail:
        raise RuntimeError("the loss-curve plot failed after registration")
    return record


class FailingIOManager(dg.IOManager):
    """Stores nothing: every ``handle_output`` fails (a full disk, a broken warehouse file)."""

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        raise OSError("No space left on device")

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


@dg.asset(group_name="fault_registry", io_manager_key="failing_io")
def toy_model_unstored(context: dg.AssetExecutionContext, tracking: Tracking) -> dict:
    """Registers a version with alias `current`; the body succeeds, its IO manager then fails."""
    return _register(context, tracking, "toy-unstored")


def _materialize(asset, resources, instance, fail: bool = False) -> dg.ExecuteInProcessResult:
    config = {"ops": {"toy_model": {"config": {"fail": fail}}}} if asset.op.name == "toy_model" else None
    return dg.materialize([asset], resources={**resources, "failing_io": FailingIOManager()}, instance=instance,
                          run_config=config, raise_on_error=False)


def _current(tracking: Tracking) -> str | None:
    try:
        return str(tracking.client.get_model_version_by_alias(NAME, "current").version)
    except MlflowException:
        return None


@pytest.fixture
def setting(resources_for):
    return resources_for, dg.DagsterInstance.ephemeral(), resources_for["tracking"]


def test_a_step_failing_after_registering_puts_current_back(setting):
    resources, instance, tracking = setting
    first = _materialize(toy_model, resources, instance)
    assert first.success and _current(tracking) == "1"
    assert tracking.client.get_model_version(NAME, "1").tags[f"{ALIAS_BEFORE}current"] == "none"

    failed = _materialize(toy_model, resources, instance, fail=True)
    assert not failed.success
    assert _current(tracking) == "1"  # not the failed run's version 2
    v2 = tracking.client.get_model_version(NAME, "2")
    assert v2.tags["dagster.run_id"] == failed.run_id
    assert v2.tags[f"{ALIAS_BEFORE}current"] == "1" and v2.tags[f"{ALIAS_RESTORED}current"] == "1"
    assert v2.tags[FAILED_STEP_TAG] == f"{failed.run_id}:toy_model"
    assert tracking.client.get_run(v2.run_id).data.tags[FAILED_STEP_TAG] == f"{failed.run_id}:toy_model"

    again = _materialize(toy_model, resources, instance)  # the next good run moves it on, with no failure tag
    assert again.success and _current(tracking) == "3"
    v3 = tracking.client.get_model_version(NAME, "3")
    assert FAILED_STEP_TAG not in v3.tags and v3.tags[f"{ALIAS_BEFORE}current"] == "1"


def test_a_failing_handle_output_puts_current_back(setting):
    resources, instance, tracking = setting
    assert _materialize(toy_model, resources, instance).success
    failed = _materialize(toy_model_unstored, resources, instance)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    assert "No space left on device" in str(failure.step_failure_data.error)
    assert _current(tracking) == "1"
    v2 = tracking.client.get_model_version(NAME, "2")
    assert v2.tags[FAILED_STEP_TAG] == f"{failed.run_id}:toy_model_unstored"
    # the MLflow run ended FINISHED (the body returned): its tag says the step failed
    run = tracking.client.get_run(v2.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[FAILED_STEP_TAG] == v2.tags[FAILED_STEP_TAG]


def test_a_first_version_from_a_failed_step_leaves_no_current(setting):
    resources, instance, tracking = setting
    assert not _materialize(toy_model, resources, instance, fail=True).success
    assert _current(tracking) is None
    v1 = tracking.client.get_model_version(NAME, "1")
    assert v1.tags[f"{ALIAS_RESTORED}current"] == "none" and FAILED_STEP_TAG in v1.tags


def test_an_alias_moved_on_by_another_run_is_left_alone(setting):
    """The failed step's version is tagged, but an alias another run has since moved is not put back."""
    resources, instance, tracking = setting
    assert _materialize(toy_model, resources, instance).success

    @dg.asset(group_name="fault_registry", name="overtaken")
    def overtaken(context: dg.AssetExecutionContext, tracking: Tracking) -> dict:
        _register(context, tracking, "toy")  # version 2
        tracking.client.set_registered_model_alias(NAME, "current", "1")  # someone else re-points it meanwhile
        raise RuntimeError("failed after registering")

    failed = _materialize(overtaken, resources, instance)
    assert not failed.success and _current(tracking) == "1"
    tags = tracking.client.get_model_version(NAME, "2").tags
    assert FAILED_STEP_TAG in tags and f"{ALIAS_RESTORED}current" not in tags


def test_a_retried_step_keeps_only_its_succeeding_attempt(setting):
    """Attempt 0 registers version 2 and fails; the retry registers version 3 and succeeds: 3 is current, and 2
    (never current after the retry) is tagged as from a failed attempt."""
    resources, instance, tracking = setting
    assert _materialize(toy_model, resources, instance).success

    @dg.asset(group_name="fault_registry", retry_policy=dg.RetryPolicy(max_retries=1))
    def flaky(context: dg.AssetExecutionContext, tracking: Tracking) -> dict:
        record = _register(context, tracking, "flaky")
        if context.retry_number == 0:
            raise RuntimeError("transient failure after registering")
        return record

    assert _materialize(flaky, resources, instance).success
    assert _current(tracking) == "3"
    assert FAILED_STEP_TAG in tracking.client.get_model_version(NAME, "2").tags
    assert FAILED_STEP_TAG not in tracking.client.get_model_version(NAME, "3").tags


def _multiprocess_job():
    """toy_model under the default (multiprocess) executor: the step runs, and its resources are torn down, in
    its own process."""
    return dg.Definitions(assets=[toy_model], resources={"tracking": Tracking()},
                          jobs=[dg.define_asset_job("toy_registry")]).resolve_job_def("toy_registry")


def test_under_the_multiprocess_executor_the_step_process_puts_current_back(warehouse_root, tmp_path):
    tracking = Tracking(warehouse_root=str(warehouse_root))

    def run(fail: bool) -> tuple[bool, str]:
        config = {"ops": {"toy_model": {"config": {"fail": fail}}},
                  "resources": {"tracking": {"config": {"warehouse_root": str(warehouse_root)}}}}
        with dg.execute_job(dg.reconstructable(_multiprocess_job), instance=instance, run_config=config,
                            raise_on_error=False) as result:
            return result.success, result.run_id

    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        ok, run_id = run(fail=True)
        assert not ok and _current(tracking) is None  # moved to version 1, then removed again
        events = [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event]
        run_pid = next(e.pid for e in events if e.event_type == dg.DagsterEventType.RUN_START)
        assert all(e.pid != run_pid for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    tags = tracking.client.get_model_version(NAME, "1").tags
    assert tags[f"{ALIAS_BEFORE}current"] == "none" and tags[f"{ALIAS_RESTORED}current"] == "none"
    assert tags[FAILED_STEP_TAG] == f"{run_id}:toy_model"
