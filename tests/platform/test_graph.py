"""The shared graph (corpora + lm) materialized on the tiny profile through `dagster.materialize`.

One module-scoped materialization; the tests read its numbers back through the warehouse, the DuckDB
catalog and the MLflow registry.
"""

import json
import math

import dagster as dg
import numpy as np
import pytest

from pipelines.definitions import defs
from pipelines.jobs import USER_INPUTS
from resources import default_resources
from resources.catalog import query

# the shared backbone every study stands on; each study's own tests materialize its group
SHARED = dg.AssetSelection.groups("corpora", "lm") - USER_INPUTS


def _everything():
    return list(defs.assets) + list(defs.asset_checks)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("warehouse")
    resources = default_resources(str(root))
    result = dg.materialize(_everything(), selection=SHARED, resources=resources)
    assert result.success
    return result, root, resources


def test_checks_pass(graph):
    result, _, _ = graph
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    for name in ("facts_documents_valid", "facts_token_truth_valid", "code_corpus_valid", "family_valid"):
        assert evaluations[name], name


def test_facts_world_tables(graph):
    result, root, _ = graph
    counts = query(root, "SELECT split, count(*) AS n FROM corpora.facts_documents GROUP BY 1 ORDER BY 1")
    from assets.corpora.defs import FactsWorldConfig

    cfg = FactsWorldConfig()
    n = dict(zip(counts["split"], counts["n"], strict=True))
    assert n["validation"] == cfg.n_validation_documents and n["test"] == cfg.n_test_documents
    assert n["train"] == cfg.n_train_documents + cfg.n_protected
    truth = query(root, "SELECT count(*) AS rows, sum(is_fact::INT) AS facts, min(true_entropy) AS lo "
                        "FROM corpora.facts_token_truth")
    words = query(root, "SELECT sum(n_words + 1) AS n FROM corpora.facts_documents")["n"].iloc[0]
    assert truth["rows"].iloc[0] == words and truth["facts"].iloc[0] > 0 and truth["lo"].iloc[0] == 0.0


def test_models_registered_and_reloadable_by_uri(graph):
    result, root, resources = graph
    from assets.lm.registry import load_model

    tracking = resources["tracking"]
    record = result.output_for_node("lm_facts_large", "lm_facts_large")
    assert record["model_uri"] == "models:/lm-facts-large/1" and record["source"] == "trained"
    assert str(tracking.client.get_model_version_by_alias("lm-facts-large", "current").version) == "1"
    model, tokenizer = load_model(record["model_uri"], tracking.resolved_tracking_uri)
    assert tokenizer is not None and model.config.vocab_size == len(tokenizer)
    from assets.lm.model import count_parameters

    assert count_parameters(model) == record["parameters"]
    run = tracking.client.get_run(record["mlflow_run_id"])
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert math.isclose(run.data.metrics["final_val_loss"], record["final_val_loss"])


def test_family_learns_and_lineage_points_at_models(graph):
    result, root, _ = graph
    family = query(root, "SELECT size, parameters, final_val_loss, upstream FROM lm.lm_facts_family ORDER BY parameters")
    vocab = result.output_for_node("facts_tokenizer")["vocab_size"]
    # every model beats the uniform guess over the vocabulary
    assert (family["final_val_loss"] < np.log(vocab)).all()
    upstream = json.loads(family["upstream"].iloc[0])
    assert "models:/lm-facts-small/1" in upstream and "models:/lm-facts-large/1" in upstream
    curve = query(root, "SELECT step, train_loss FROM lm.lm_facts_small_curve ORDER BY step")
    assert curve["train_loss"].iloc[-5:].mean() < curve["train_loss"].iloc[:3].mean()


def test_code_corpus_hash_in_lineage(graph):
    _, root, _ = graph
    hashes = query(root, "SELECT DISTINCT corpus_hash FROM corpora.code_corpus")
    assert len(hashes) == 1 and len(hashes["corpus_hash"].iloc[0]) == 64


def test_user_corpus_and_checkpoint_import(graph, tmp_path):
    """A user's corpus file and a local Hugging Face checkpoint directory, both made by this test."""
    _, root, resources = graph
    from assets.corpora.tokenization import load_tokenizer
    from assets.lm.registry import model_dir

    corpus = tmp_path / "mine.jsonl"
    rows = [{"text": f"def f{i}(x):\n    return x * {i}\n", "owner": f"o{i % 2}"} for i in range(40)]
    corpus.write_text("\n".join(json.dumps(r) for r in rows))
    user = dg.materialize(_everything(), selection=dg.AssetSelection.assets("user_corpus"), resources=resources,
                          run_config={"ops": {"user_corpus": {"config": {"path": str(corpus),
                                                                          "owner_column": "owner"}}}})
    docs = user.output_for_node("user_corpus")
    assert len(docs) == 40 and set(docs["owner"]) == {"o0", "o1"}

    bad = dg.materialize(_everything(), selection=dg.AssetSelection.assets("user_corpus"), resources=resources,
                         run_config={"ops": {"user_corpus": {"config": {"path": str(tmp_path / "nope.txt")}}}},
                         raise_on_error=False)
    assert not bad.success
    assert "nope.txt" in str([e for e in bad.all_events if e.is_step_failure][0].step_failure_data.error)

    # import the trained small facts model from a plain checkpoint directory, as a user would
    tracking = resources["tracking"]
    source = model_dir("models:/lm-facts-small/1", tracking.resolved_tracking_uri)
    imported = dg.materialize(
        _everything(), selection=dg.AssetSelection.assets("lm_facts_small", "lm_facts_small_curve"), resources=resources,
        run_config={"ops": {"lm_facts_small": {"config": {"checkpoint_dir": str(source)}}}})
    record = imported.output_for_node("lm_facts_small", "lm_facts_small")
    assert record["source"] == "checkpoint" and record["model_uri"] == "models:/lm-facts-small/2"
    trained = query(root, "SELECT final_val_loss FROM lm.lm_facts_small_history ORDER BY materialized_at")
    # the same weights scored on the same validation windows: the loss of the import matches training's
    assert math.isclose(record["final_val_loss"], trained["final_val_loss"].iloc[0], rel_tol=1e-4)
    assert load_tokenizer(source).get_vocab() == load_tokenizer(model_dir(record["model_uri"], tracking.resolved_tracking_uri)).get_vocab()


def test_diverging_training_fails_and_registers_nothing(graph):
    _, _, resources = graph
    tracking = resources["tracking"]
    before = len(tracking.client.search_model_versions("name='lm-facts-large'"))
    result = dg.materialize(
        _everything(), selection=dg.AssetSelection.assets("lm_facts_large", "lm_facts_large_curve"),
        resources=resources, raise_on_error=False,
        run_config={"ops": {"lm_facts_large": {"config": {"learning_rate": 1e4, "min_lr": 1e3, "warmup_steps": 1}}}})
    assert not result.success
    error = str([e for e in result.all_events if e.is_step_failure][0].step_failure_data.error)
    assert "TrainingDivergedError" in error
    assert len(tracking.client.search_model_versions("name='lm-facts-large'")) == before
    failed = tracking.client.search_runs([tracking._experiment_id], "attributes.status = 'FAILED'")
    assert any(r.data.tags.get("dagster.run_id") == result.run_id for r in failed)


def test_one_tick_of_the_nightly_schedule(graph):
    """The nightly tick asks for the evaluation stage; running it re-evaluates against the registered models."""
    from datetime import UTC, datetime

    from pipelines.jobs import EVALUATION, nightly_schedule

    _, root, resources = graph
    assert nightly_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert nightly_schedule.cron_schedule == "0 2 * * *"
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance,
                                            scheduled_execution_time=datetime(2026, 11, 28, 2, tzinfo=UTC))
        requests = nightly_schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    nightly = EVALUATION & SHARED  # the studies' evaluation assets are exercised by their own tests
    selected = nightly.resolve(defs.resolve_asset_graph())
    assert dg.AssetKey("lm_facts_family") in selected and dg.AssetKey("lm_facts_large") not in selected
    before = query(root, "SELECT count(DISTINCT run_id) AS n FROM lm.lm_facts_family_history")["n"].iloc[0]
    tick = dg.materialize(_everything(), selection=nightly, resources=resources, tags=requests[0].tags)
    assert tick.success
    history = query(root, "SELECT run_id, size, final_val_loss, materialized_at FROM lm.lm_facts_family_history "
                          "ORDER BY materialized_at")
    assert history["run_id"].nunique() == before + 1
    # the registered models did not change overnight, so neither did their losses
    runs = history["run_id"].drop_duplicates().tolist()
    last, previous = (history[history["run_id"] == r].set_index("size")["final_val_loss"] for r in runs[-1:-3:-1])
    assert np.allclose(last.sort_index(), previous.sort_index(), rtol=1e-4)


def test_report_is_one_self_contained_page(graph, tmp_path):
    import re

    from pipelines.cli import main

    _, root, _ = graph
    out = tmp_path / "report.html"
    assert main(["--warehouse", str(root), "report", "--out", str(out)]) == 0
    page = out.read_text()
    assert "lm.lm_facts_family" in page and "corpora.facts_documents" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 3  # the facts world, a loss curve, a family plot
    assert not re.search(r'(src|href)="https?://', page), "the report must not load anything from the network"


def test_report_renders_in_a_real_browser(graph, tmp_path):
    """Debian's headless Chromium opens the report: every figure decodes, and the screenshot shows them."""
    import re

    import numpy as np
    from PIL import Image

    from pipelines.report import write_report
    from tests.platform import browser

    binary = browser.chromium()
    _, root, _ = graph
    page = write_report(root, tmp_path / "report.html")
    dom = browser.run(binary, page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shown = re.search(r'data-figures="(\d+)" data-figures-rendered="(\d+)"', dom.stdout)
    assert shown, "the report's load handler did not run"
    assert int(shown.group(1)) >= 3 and shown.group(1) == shown.group(2)

    # the same check sees a figure that fails to decode
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("base64,iVBOR", "base64,AAAAA", 1))
    dom = browser.run(binary, broken, tmp_path / "profile2", "--dump-dom")
    shown = re.search(r'data-figures="(\d+)" data-figures-rendered="(\d+)"', dom.stdout)
    assert int(shown.group(2)) == int(shown.group(1)) - 1

    shot = tmp_path / "report.png"
    done = browser.run(binary, page, tmp_path / "profile3", f"--screenshot={shot}", "--window-size=1280,2400")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2400, 1280)
    # matplotlib's first colour (the plots' lines) and the page's text are both on screen, not a blank page
    plot_blue = (np.abs(pixels - np.array([31, 119, 180])).sum(axis=2) < 40).sum()
    dark_text = (pixels.sum(axis=2) < 150).sum()
    assert plot_blue > 500 and dark_text > 2000, (plot_blue, dark_text)
