"""The scaling Dagster side's plain helpers: a grid run's params and names, and the data checks' rules, each
shown to fail on a table that breaks them."""

import numpy as np
import pandas as pd

from assets.lm.model import ModelSize
from assets.scaling import validity
from assets.scaling.grid import GridCell, RunSettings
from assets.scaling.tables import cell_description, registered_name, run_params, study_corpus
from resources.validation import expectations, gx_check

SMALL = ModelSize(name="s", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=16)


def test_a_grid_runs_params_and_names():
    cell = GridCell(SMALL, 512, 4)
    params = run_params(cell, RunSettings(batch_size=2), "code_corpus", "runs:/x/tokenizer")
    assert params["cell"] == "scaling_run_s_u512_e4" and params["d_model"] == 16 and params["batch_size"] == 2
    assert params["unique_tokens"] == 512 and params["epochs"] == 4 and params["corpus"] == "code_corpus"
    assert registered_name(cell) == "scaling-s-u512-e4"
    assert cell_description(cell).startswith("Grid run: model s trained 4 epoch(s) over 512 unique tokens (D = 2,048)")
    documents = pd.DataFrame({"split": ["train"], "text": ["x"]})
    assert study_corpus(documents, None, "text", 0.1, 0) == (documents, "code_corpus")


def test_a_local_corpus_is_named_by_its_absolute_path_and_content(tmp_path, monkeypatch):
    """Two files of one name in two folders, or one file edited, give different sources (the `corpus` column of
    every grid run); the same content in the same place gives the same source."""
    texts = ["def f():\n    return 1\n", "x = [i for i in range(3)]\n", "print('hi')\n"] * 4
    sources = []
    for folder, edit in (("a", ""), ("b", ""), ("a", "# edited\n")):
        path = tmp_path / folder / "corpus.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n\n".join(texts) + edit)
        monkeypatch.chdir(path.parent)
        documents, source = study_corpus(pd.DataFrame(), "corpus.txt", "text", 0.25, 0)
        assert len(documents) == len(texts) and source.startswith(f"{path}#sha256:")
        sources.append(source)
    assert len(set(sources)) == 3
    monkeypatch.chdir(tmp_path)
    assert study_corpus(pd.DataFrame(), str(tmp_path / "b" / "corpus.txt"), "text", 0.25, 0)[1] == sources[1]


def test_runs_rule_holds_d_to_unique_tokens_times_epochs():
    runs = pd.DataFrame({"run": ["a", "b"], "mlflow_run_id": ["1", "2"], "held_out_loss": [3.0, 2.5],
                         "parameters": [100, 200], "epochs": [1, 4], "unique_tokens": [512, 512],
                         "tokens": [512, 2048]})
    assert gx_check(*validity.runs(expectations(), runs, 2), name="runs").passed
    assert not gx_check(*validity.runs(expectations(), runs.assign(tokens=[512, 1024]), 2), name="runs").passed
    assert not gx_check(*validity.runs(expectations(), runs, 3), name="runs").passed


def test_token_chunks_rule_and_chunk_sizes():
    chunks = pd.DataFrame({"split": ["train", "train", "validation"], "n_tokens": [3, 3, 2],
                           "tokens": [np.array([1, 2, 3]), np.array([0, 4, 5]), np.array([7, 8])]})
    assert gx_check(*validity.tokens(expectations(), chunks), name="tokens").passed
    assert validity.train_chunk_sizes(chunks) == 1
    short = chunks.assign(n_tokens=[3, 2, 2], tokens=[np.array([1, 2, 3]), np.array([0, -4]), np.array([7, 8])])
    assert not gx_check(*validity.tokens(expectations(), short), name="tokens").passed
    assert validity.train_chunk_sizes(short) == 2


def test_law_fit_ordering_and_allocation_and_effective_data_rules():
    fit = pd.DataFrame({"stage": ["decay", "decay", "chinchilla"], "value": [15.0, 5.0, 0.3],
                        "ci_low": [10.0, 1.0, np.nan], "ci_high": [20.0, 9.0, np.nan]})
    assert validity.law_constants_ordered(fit)
    assert not validity.law_constants_ordered(fit.assign(ci_low=[30.0, 1.0, np.nan]))
    assert not validity.law_constants_ordered(fit.assign(value=[-1.0, 5.0, 0.3]))
    allocation = pd.DataFrame({"parameters": [1e6], "tokens": [2e7], "compute": [1.2e14], "loss": [3.0],
                               "chinchilla_loss_with_cap": [3.1]})
    assert gx_check(*validity.allocation(expectations(), allocation), name="allocation").passed
    assert not gx_check(*validity.allocation(expectations(), allocation.assign(compute=2e14)), name="a").passed
    effective = pd.DataFrame({"effective_data_multiple": [1.0, 1.9], "epochs": [1, 2], "limit_multiple": [16.0, 16.0]})
    assert gx_check(*validity.effective_data(expectations(), effective), name="effective").passed
    assert not gx_check(*validity.effective_data(expectations(), effective.assign(epochs=[1, 1.5])), name="e").passed


def test_an_empty_budget_list_is_refused_not_replaced_by_the_default():
    import pytest

    from assets.scaling.study import allocation

    with pytest.raises(ValueError, match="budgets is empty"):
        allocation(pd.DataFrame(), pd.DataFrame(), None, [], 1e9, [1e20])
