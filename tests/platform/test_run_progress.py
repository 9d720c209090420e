"""The demo's progress lines, read from a real run's event log."""

import io
import uuid

import dagster as dg
import pytest

from pipelines.run_progress import RunProgress


@dg.asset(group_name="progress_demo")
def first() -> int:
    return 1


@dg.asset(group_name="progress_demo")
def second(first: int) -> int:
    return first + 1


@dg.asset(group_name="progress_demo")
def broken(second: int) -> int:
    raise RuntimeError("planted failure")


def test_one_line_per_materialized_asset_and_per_failed_step():
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([first, second, broken], instance=instance, raise_on_error=False)
    assert not result.success
    out = io.StringIO()
    progress = RunProgress(instance, result.run_id, total_assets=3, out=out)
    lines = progress.poll()
    assert lines[0].startswith("[  1/3]") and " first " in lines[0]
    assert lines[1].startswith("[  2/3]") and " second " in lines[1]
    assert "FAILED" in lines[2] and "broken" in lines[2]
    assert progress.done == 2 and progress.failed == ["broken"]
    assert progress.poll() == []  # the cursor moved on: nothing is printed twice
    progress.stop()  # prints what is left: nothing
    assert out.getvalue() == ""


def test_thread_prints_while_the_run_goes_on():
    instance = dg.DagsterInstance.ephemeral()
    job = dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("both")]).resolve_job_def("both")
    out = io.StringIO()
    run_id = str(uuid.uuid4())
    progress = RunProgress(instance, run_id, total_assets=2, out=out, interval=0.01).start()
    assert progress.poll() == []  # no such run yet
    try:
        assert job.execute_in_process(instance=instance, run_id=run_id).success
    finally:
        progress.stop()
    printed = out.getvalue().splitlines()
    assert len(printed) == 2 and printed[0].startswith("[  1/2]") and printed[1].startswith("[  2/2]")
    assert progress.done == 2 and not progress.failed


def test_total_must_be_positive():
    with pytest.raises(ValueError, match="total_assets"):
        RunProgress(dg.DagsterInstance.ephemeral(), "x", total_assets=0)
