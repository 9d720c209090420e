"""`reprolab evaluate` (pipelines/evaluate.py) against a fake endpoint: only the endpoint's own errors read as
"evaluating URL failed" (a bug in the grading raises), --max-items is sampled with --seed as safety_results samples
it with its seed, and the tables it writes are recorded in the Dagster instance, so a run re-materializing
safety_system_card alone reads them."""

import contextlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from assets.chat.client import Endpoint
from assets.safety.oracle import ideal_response, scripted_responder
from pipelines.cli import main
from resources.tables import Lineage, latest_file, write_table
from tests.safety.test_benchmarks import XSTEST
from tests.safety.test_responders import _Rejecting

URL = "http://127.0.0.1:9/v1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def warehouse(suite, tmp_path, monkeypatch):
    """A warehouse holding the suite's items, and an endpoint (Endpoint.client) answering as the policy oracle
    (no Dagster instance: DAGSTER_HOME unset, none beside the warehouse)."""
    root = tmp_path / "warehouse"
    write_table(root, "safety", "safety_items", suite, Lineage(run_id="items", code_version="1"))
    oracle = scripted_responder(suite, ideal_response)
    known = set(suite["messages"].map(lambda m: json.dumps(json.loads(m), sort_keys=True)))

    def answer(batch):  # the oracle on the suite, "no" to a benchmark file's prompts
        return [oracle([m])[0] if json.dumps(m, sort_keys=True) in known else "no" for m in batch]

    completions = _Rejecting(answer, lambda messages: False)
    monkeypatch.setattr(Endpoint, "client", lambda self: SimpleNamespace(chat=SimpleNamespace(completions=completions)))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return root


def _evaluate(root, *extra):
    return main(["--warehouse", str(root), "evaluate", "--base-url", URL, "--model", "m", *extra])


def test_a_bug_in_the_grading_raises_and_is_not_reported_as_the_endpoints_failure(warehouse, monkeypatch, capsys):
    import assets.safety.benchmarks

    def broken(results, items, judge=None):
        raise KeyError("a bug in the grading")

    monkeypatch.setattr(assets.safety.benchmarks, "graded_benchmarks", broken)
    with pytest.raises(KeyError, match="a bug in the grading"):  # was: exit 2, "evaluating URL failed"
        _evaluate(warehouse)
    assert "failed" not in capsys.readouterr().err


def test_the_endpoints_own_errors_still_read_as_its_failure(warehouse, monkeypatch, capsys):
    import openai

    def refused(**kwargs):
        raise openai.AuthenticationError("Error code: 401", response=SimpleNamespace(status_code=401, headers={},
                                                                                     request=None), body=None)

    monkeypatch.setattr(Endpoint, "client", lambda self: SimpleNamespace(chat=SimpleNamespace(
        completions=SimpleNamespace(create=refused))))
    assert _evaluate(warehouse) == 2 and f"error: evaluating {URL} failed: Error code: 401" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # a non-loopback URL without its key: the key's error, in one line
    assert main(["--warehouse", str(warehouse), "evaluate", "--base-url", "https://example.org/v1",
                 "--api-key-env", "REPROLAB_NO_SUCH_KEY"]) == 2
    assert "REPROLAB_NO_SUCH_KEY is not set" in capsys.readouterr().err


def test_max_items_is_sampled_with_the_seed(warehouse, tmp_path, monkeypatch):
    import assets.safety.benchmarks as benchmarks

    path = tmp_path / "xstest_prompts.csv"
    XSTEST.to_csv(path, index=False)
    asked = []
    real = benchmarks.with_benchmarks

    def recording(items, files, max_items=None, seed=0):
        out = real(items, files, max_items, seed)
        asked.append(out.loc[out["set"] == "xstest", "request"].tolist())
        return out

    monkeypatch.setattr(benchmarks, "with_benchmarks", recording)
    samples = {seed: benchmarks.load_benchmark(path, max_items=2, seed=seed)["request"].tolist() for seed in (0, 3)}
    assert samples[0] != samples[3]  # the two seeds pick different items of this file
    assert _evaluate(warehouse, "--benchmark", str(path), "--max-items", "2", "--seed", "3") == 0
    assert asked == [samples[3]]  # was: seed 0's sample whatever --seed said


def test_the_written_tables_are_recorded_so_a_card_rerun_keeps_the_endpoint(warehouse, suite, capsys, monkeypatch):
    from assets.safety.defs import safety_system_card
    from assets.safety.responders import REFERENCES, run_references
    from resources import default_resources

    home = warehouse.parent / "dagster_home"  # beside the warehouse: the layout of `reprolab demo`
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)  # the project's: its base_dir reads DAGSTER_HOME
    nightly = run_references(suite, names=tuple(REFERENCES))  # the graph's last safety_results: no endpoint
    path = write_table(warehouse, "safety", "safety_results", nightly, Lineage(run_id="nightly", code_version="1"))
    items = latest_file(warehouse, "safety", "safety_items")
    with _instance(home, monkeypatch) as instance:
        for key, written in (("safety_items", items), ("safety_results", path)):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                key, metadata={"path": dg.MetadataValue.path(str(written))}))
    monkeypatch.delenv("DAGSTER_HOME")  # evaluate finds the instance beside the warehouse on its own
    assert _evaluate(warehouse) == 0 and "note:" not in capsys.readouterr().err
    with _instance(home, monkeypatch) as instance:
        rerun = dg.materialize([safety_system_card, dg.AssetSpec("safety_results", group_name="safety")],
                               selection=[safety_system_card], instance=instance,
                               resources=default_resources(str(warehouse)))
    card = rerun.asset_value("safety_system_card")
    assert rerun.success and set(card.loc[card["responder"] == "endpoint", "endpoint"]) == {URL}  # was: none
    assert set(card["model"]) >= set(REFERENCES)


def test_without_an_instance_evaluate_says_so(warehouse, capsys):
    assert _evaluate(warehouse) == 0 and "note: no Dagster instance found" in capsys.readouterr().err


def test_another_labs_instance_is_not_written_to(warehouse, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other_lab_home"  # DAGSTER_HOME of a lab whose safety_items live elsewhere
    other.mkdir()
    with _instance(other, monkeypatch) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "safety_items", metadata={"path": dg.MetadataValue.path(str(tmp_path / "elsewhere" / "x.parquet"))}))
        assert _evaluate(warehouse) == 0
        assert instance.get_latest_materialization_event(dg.AssetKey("safety_results")) is None
    assert "materialized this warehouse's safety_items" in capsys.readouterr().err


@contextlib.contextmanager
def _instance(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_a_moved_warehouse_still_records_in_its_instance(warehouse, tmp_path, monkeypatch, capsys):
    """The instance recorded safety_items under the old folder: after a move, the file with the same
    materialization id is here, so the instance is still this warehouse's (was: "no Dagster instance ...")."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    items = latest_file(warehouse, "safety", "safety_items")
    with _instance(home, monkeypatch) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "safety_items", metadata={"path": dg.MetadataValue.path(str(tmp_path / "old" / "warehouse" / "safety" /
                                                                        "safety_items" / items.name))}))
    monkeypatch.delenv("DAGSTER_HOME")
    assert _evaluate(warehouse) == 0 and "note:" not in capsys.readouterr().err
    with _instance(home, monkeypatch) as instance:
        recorded = instance.get_latest_materialization_event(dg.AssetKey("safety_results"))
    assert str(recorded.asset_materialization.metadata["path"].value).startswith(str(warehouse))
