"""The one way to train and register: the config base builds TrainConfig and ModelSize by keyword, and
`train_and_register` trains, logs to a real MLflow store, registers with aliases, and the record loads back."""

from types import SimpleNamespace

import pytest

from assets.lm.config import ModelShape, Optimiser
from assets.lm.model import ModelSize, count_parameters
from assets.lm.registration import (
    DatasetInput,
    Display,
    ProgressLog,
    load_registered,
    load_tokenizer_of,
    log_training_run,
    train_and_register,
)
from assets.lm.training import TrainConfig

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "rug", "."]


class CPU:
    """The Compute resource's interface, on CPU."""

    def torch_device(self):
        return "cpu"

    def use_bf16(self):
        return False

    def use_compile(self):
        return False

    def hardware(self):
        return {"device": "cpu"}


class StudyConfig(ModelShape, Optimiser):
    """A study's Config: restates only the defaults it changes."""

    d_model: int = 16
    max_steps: int = 12
    weight_decay: float = 0.05  # an optimiser field the base does not declare


def test_train_config_takes_the_optimiser_fields_the_config_has():
    config = StudyConfig(batch_size=4, learning_rate=2e-3, min_lr=1e-4, warmup_steps=2, eval_batches=1, seed=3)
    expected = TrainConfig(max_steps=12, batch_size=4, learning_rate=2e-3, min_lr=1e-4, warmup_steps=2,
                           weight_decay=0.05, eval_interval=12, eval_batches=1, seed=3, device="cpu")
    assert config.train_config(CPU(), eval_interval=12) == expected
    # the shape's context_length is the model's: the trainer takes it from the model, not from the config
    assert config.train_config(CPU(), eval_interval=12).context_length is None
    with pytest.raises(ValueError, match="warmup_steps"):
        StudyConfig(warmup_steps=20).train_config(CPU())  # TrainConfig's own validation still applies


def test_a_grad_clip_of_zero_means_no_clipping():
    class Unclipped(StudyConfig):
        grad_clip: float = 0.0  # FIELD_DOCS: "gradient-norm clip (0: none)"; TrainConfig refused 0.0

    assert Unclipped(warmup_steps=2).train_config(CPU()).grad_clip is None
    assert Unclipped(warmup_steps=2, grad_clip=0.5).train_config(CPU()).grad_clip == 0.5


def test_model_size_is_built_by_keyword_and_empty_fields_take_the_family_size():
    assert StudyConfig().model_size("t") == ModelSize(name="t", d_model=16, n_layers=1, n_heads=2, d_ff=64,
                                                      context_length=32)

    class Overrides(ModelShape):
        d_model: int | None = None
        n_layers: int | None = 3
        n_heads: int | None = None
        d_ff: int | None = None
        context_length: int | None = None

    family = ModelSize(name="small", d_model=32, n_layers=1, n_heads=4, d_ff=64, context_length=48, n_kv_heads=2)
    assert Overrides().model_size("small", family=family) == ModelSize(
        name="small", d_model=32, n_layers=3, n_heads=4, d_ff=64, context_length=48, n_kv_heads=2)


def test_progress_log_speaks_about_ten_times_and_at_every_evaluation():
    lines = []
    progress = ProgressLog(lines.append, 40, label="run")
    for step in range(1, 41):
        progress.on_train_log({"step": step, "train_loss": 2.0, "val_loss": 1.5 if step == 7 else float("nan"),
                               "tokens_per_s": 100.0})
    assert len(lines) == 11  # every 4th step, and the evaluation at step 7
    assert lines[1].startswith("run: 7/40 steps, train_loss 2.000 val_loss 1.500")
    assert lines[-1].startswith("run: 40/40 ") and "ETA 0s" in lines[-1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow store (SQLite and artifacts under a fresh warehouse) and a word-level tokenizer in it."""
    from assets.corpora.tokenization import save_tokenizer, train_word_level_tokenizer
    from resources.tracking import Tracking

    root = tmp_path_factory.mktemp("warehouse")
    tokenizer_dir = save_tokenizer(train_word_level_tokenizer(WORDS), root / "tokenizer")
    return Tracking(warehouse_root=str(root)), {"tokenizer_uri": str(tokenizer_dir)}


def _texts(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(["the cat sat on the mat .", "the dog ran on the rug ."]) for _ in range(4))
            for _ in range(n)]


def test_train_and_register_logs_registers_and_loads_back(store):
    from assets.lm.family import fit_language_model

    tracking, tokenizer_record = store
    tokenizer = load_tokenizer_of(tokenizer_record, tracking)
    lines, shown = [], []
    context = SimpleNamespace(log=SimpleNamespace(info=lines.append), run=SimpleNamespace(run_id="dagster-run-1"))
    display = Display(link=lambda url: ("link", url), figure=lambda fig, name: shown.append(name) or ("plot", name))
    size = ModelSize(name="t", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=16)
    cfg = TrainConfig(max_steps=4, batch_size=4, warmup_steps=1, eval_interval=2, eval_batches=1)

    fitted, record, metadata = train_and_register(
        context, tracking, CPU(), lambda workdir, on_log: fit_language_model(
            size, tokenizer, _texts(40, 0), _texts(10, 1), cfg, workdir / "model", on_log=on_log),
        run_name="unit-run", params={"size": "t"}, steps=cfg.max_steps, registered="unit-model",
        aliases=["current", "best"], plot_name="lm/unit", display=display,
        datasets=[DatasetInput.of_texts("toy-train", _texts(40, 0), "train", source="corpora.toy")])

    assert record["model_uri"] == "models:/unit-model/1" and record["aliases"] == ["current", "best"]
    assert record["final_val_loss"] == fitted.final_val_loss and record["tokens_seen"] == 4 * 4 * 16
    assert record["hardware"] == {"device": "cpu"}
    run = tracking.client.get_run(record["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["dagster.run_id"] == "dagster-run-1"
    assert run.data.params == {"size": "t", "device": "cpu"}
    (logged,) = run.inputs.dataset_inputs  # the training set as an MLflow dataset input
    assert logged.dataset.name == "toy-train" and logged.dataset.digest == DatasetInput.of_texts(
        "x", _texts(40, 0), "train").digest != DatasetInput.of_texts("x", _texts(40, 1), "train").digest
    assert [(t.key, t.value) for t in logged.tags] == [("mlflow.data.context", "train")]
    assert '"num_rows": 40' in logged.dataset.profile and "corpora.toy" in logged.dataset.source
    assert run.data.metrics["final_val_loss"] == pytest.approx(fitted.final_val_loss)
    assert len(tracking.client.get_metric_history(run.info.run_id, "train_loss")) == 4
    assert int(tracking.client.get_model_version_by_alias("unit-model", "best").version) == 1
    assert metadata["mlflow"] == ("link", record["mlflow_link"]) and metadata["loss_curve"] == ("plot", "lm/unit")
    assert metadata["final_val_loss"] == fitted.final_val_loss and shown == ["lm/unit"]
    assert lines[-1].startswith("unit-run: 4/4 steps")

    model, loaded_tokenizer = load_registered(record, tracking)
    assert count_parameters(model) == record["parameters"] and loaded_tokenizer.get_vocab() == tokenizer.get_vocab()

    # the version is an MLflow model: signature, input example, requirements, tags, description, pyfunc loads it
    import mlflow
    from mlflow.models import Model

    version = tracking.client.get_model_version("unit-model", "1")
    assert version.tags["dagster.run_id"] == "dagster-run-1" and version.tags["reprolab.profile"] == "tiny"
    assert version.tags["dagster.asset_key"] == "unit-run" and version.tags["reprolab.git_commit"]
    assert "unit-run" in version.description and "mlflow.pyfunc.load_model" in version.description
    mlflow.set_tracking_uri(tracking.resolved_tracking_uri)
    try:
        info = Model.load(record["model_uri"])
        assert info.signature.inputs.input_names() == ["prompt"]
        assert {p.name for p in info.signature.params} == {"max_new_tokens", "temperature"}
        assert info.saved_input_example_info["type"] == "dataframe"
        pyfunc = mlflow.pyfunc.load_model(record["model_uri"])
        texts = pyfunc.predict({"prompt": ["the cat", "the dog"]}, params={"max_new_tokens": 3})
    finally:
        mlflow.set_tracking_uri(None)
    assert len(texts) == 2 and all(isinstance(t, str) and len(t.split()) <= 3 for t in texts), texts
    assert all(w in WORDS for t in texts for w in t.split())  # words of the model's own vocabulary


def test_a_failed_fit_fails_its_run_and_registers_nothing(store):
    tracking, _ = store
    context = SimpleNamespace(log=SimpleNamespace(info=print), run=SimpleNamespace(run_id="dagster-run-2"))

    def fit(workdir, on_log):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train_and_register(context, tracking, CPU(), fit, run_name="failing-run", params={}, steps=1,
                           registered="never-registered", display=Display(str, lambda fig, name: name))
    runs = tracking.client.search_runs([tracking._experiment_id], "tags.`dagster.run_id` = 'dagster-run-2'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert not tracking.client.search_registered_models("name = 'never-registered'")


def test_a_run_logged_without_registration_keeps_only_its_link(store):
    import pandas as pd

    tracking, _ = store
    curve = pd.DataFrame({"step": [1, 2], "train_loss": [3.0, 2.5]})
    with tracking.start_run("unregistered") as run_id:
        model = log_training_run(tracking, run_id, curve=curve, metrics={"held_out_loss": 2.5})
    assert model == {"model_uri": None, "mlflow_run_id": run_id, "mlflow_link": tracking.run_link(run_id)}
    assert [m.value for m in tracking.client.get_metric_history(run_id, "train_loss")] == [3.0, 2.5]
    with pytest.raises(ValueError, match="checkpoint_dir"):
        log_training_run(tracking, run_id, curve=None, metrics={}, registered="needs-a-checkpoint")


def test_a_token_stream_dataset_is_digested_by_its_values():
    import numpy as np

    stream = DatasetInput.of_tokens("pool", np.arange(50, dtype=np.int64), "train", source="scaling_tokens")
    assert stream.rows == 50 and stream.source == "scaling_tokens" and stream.split == "train"
    assert stream.digest == DatasetInput.of_tokens("other", list(range(50)), "validation").digest  # values, not dtype
    assert stream.digest != DatasetInput.of_tokens("pool", np.arange(1, 51), "train").digest
    assert stream.digest != DatasetInput.of_tokens("pool", np.arange(49), "train").digest
