"""What `reprolab serve` serves has an identity that changes with the weights, and `reprolab evaluate` keys what it
stores by it: two checkpoints that share a folder name (runA/checkpoint-100, runB/checkpoint-100) served in turn
on one URL keep two sets of rows, each with its model_uri; a registry alias is served as its version
(`models:/chat-sft@current` -> `chat-sft/2`). The servers are the real FastAPI app, reached through the `openai`
client over Starlette's test transport (no port), on tiny chat checkpoints saved here."""

import hashlib
import json
import shutil

import openai
import pytest

from assets.chat.client import Endpoint
from assets.lm.model import ModelSize, save_checkpoint
from assets.safety.policy import REFUSAL
from pipelines.cli import main
from pipelines.serve import create_app, load_server
from resources.tables import Lineage, latest_file, read_table, write_table
from tests.chat.conftest import make_model, make_tokenizer
from tests.safety.conftest import documents, suite, world  # noqa: F401 - the safety tests' session fixtures

URL = "http://127.0.0.1:8000/v1"  # one address for every server of a test: "the same port"
SIZE = ModelSize("serve-identity", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=512)


@pytest.fixture(scope="module")
def chat_tokenizer(suite):  # noqa: F811
    words = {w for m in suite["messages"] for turn in json.loads(m) for w in str(turn["content"]).split()}
    return make_tokenizer(extra=sorted(words) + REFUSAL.split())


def _checkpoint(directory, tokenizer, seed):
    return save_checkpoint(make_model(tokenizer, seed=seed, size=SIZE), tokenizer, directory)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, chat_tokenizer):
    """Two checkpoints with one folder name and different weights, as a user's two training runs leave them."""
    root = tmp_path_factory.mktemp("runs")
    return (_checkpoint(root / "runA" / "checkpoint-100", chat_tokenizer, seed=1),
            _checkpoint(root / "runB" / "checkpoint-100", chat_tokenizer, seed=2))


def _client_of(app):
    from fastapi.testclient import TestClient

    return openai.OpenAI(base_url=URL, api_key="unused", max_retries=0, http_client=TestClient(app))


def test_a_checkpoint_is_named_by_its_folder_and_a_digest_of_its_weights(two_runs, tmp_path):
    a, b = two_runs
    first, second = (load_server(str(d), tracking_uri="sqlite:///unused.db") for d in (a, b))
    digest = hashlib.sha256((a / "model.safetensors").read_bytes()).hexdigest()
    assert first.name == f"checkpoint-100@{digest[:8]}"  # was: "checkpoint-100" for both
    assert second.name.startswith("checkpoint-100@") and second.name != first.name
    assert first.served.model_uri == str(a.resolve()) and first.served.weights_sha256 == digest
    copy = shutil.copytree(a, tmp_path / "elsewhere" / "checkpoint-100")
    assert load_server(str(copy), tracking_uri="sqlite:///unused.db").name == first.name  # same weights, same model
    named = load_server(str(a), tracking_uri="sqlite:///unused.db", name="my-model")
    assert named.name == "my-model" and named.served.weights_sha256 == digest  # an explicit name wins
    (tmp_path / "not-a-checkpoint").mkdir()
    with pytest.raises(FileNotFoundError, match="not-a-checkpoint has no config.json"):
        load_server(str(tmp_path / "not-a-checkpoint"), tracking_uri="sqlite:///unused.db")


def test_the_identity_is_listed_and_reported_and_the_folder_name_still_asks(two_runs):
    a, _ = two_runs
    server = load_server(str(a), tracking_uri="sqlite:///unused.db")
    client = _client_of(create_app(server))
    listed = client.models.list().data
    assert [m.id for m in listed] == [server.name]
    card = listed[0].model_extra
    assert card["source"] == str(a) and card["model_uri"] == str(a.resolve())
    assert server.name.endswith("@" + card["weights_sha256"][:8])
    # asked by the folder's name (what clients asked before), answered as the identity
    reply = client.chat.completions.create(model="checkpoint-100", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2, extra_body={"reasoning_budget": 1})
    assert reply.model == server.name and reply.model_extra["reasoning_budget"] == 1
    assert client.models.retrieve("checkpoint-100").id == server.name
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="checkpoint-200", messages=[{"role": "user", "content": "hi"}])
    assert server.name in caught.value.body["message"]


@pytest.fixture
def warehouse(suite, tmp_path, monkeypatch):  # noqa: F811
    """A warehouse holding the suite's items; Endpoint.client reaches whichever app `serving` holds."""
    root = tmp_path / "warehouse"
    write_table(root, "safety", "safety_items", suite, Lineage(run_id="items", code_version="1"))
    serving = {}
    monkeypatch.setattr(Endpoint, "client", lambda self: _client_of(serving["app"]))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return root, serving


def _evaluate(root, *extra):
    return main(["--warehouse", str(root), "evaluate", "--base-url", URL, "--max-items", "1", "--budget", "2",
                 "--max-tokens", "3", "--regurgitation-max-tokens", "13", *extra])


def _results(root):
    return read_table(latest_file(root, "safety", "safety_results"))


def test_two_checkpoints_served_in_turn_on_one_url_keep_their_own_rows(two_runs, warehouse):
    """The review's walkthrough: serve runA's checkpoint-100, evaluate; serve runB's on the same URL, evaluate.
    Was: one `checkpoint-100` set (the second), model_uri '', the first model's rows gone."""
    root, serving = warehouse
    servers = [load_server(str(d), tracking_uri="sqlite:///unused.db") for d in two_runs]
    for server in servers:
        serving["app"] = create_app(server)
        assert _evaluate(root) == 0
    results = _results(root)
    by_model = results.groupby(["model", "model_uri"]).size()
    assert sorted(by_model.index) == sorted((s.name, s.served.model_uri) for s in servers)
    assert by_model.nunique() == 1  # the same sample asked of each
    # the budget the server applied is recorded (was: NaN on every endpoint row)
    answered = results[results["answered"]]
    assert len(answered) and answered["applied_budget"].notna().all() and (answered["applied_budget"] <= 2).all()
    # runA again: its own rows replaced, runB's kept
    serving["app"] = create_app(servers[0])
    assert _evaluate(root) == 0
    again = _results(root).groupby("model").size()
    assert again.to_dict() == by_model.droplevel("model_uri").to_dict()
    card = read_table(latest_file(root, "safety", "safety_system_card"))
    assert set(card["model"]) == {s.name for s in servers}


def test_a_registry_alias_is_served_and_stored_as_its_version(chat_tokenizer, warehouse, tmp_path):
    """`serve models:/chat-sft@current` reports the version the alias named when it started (`chat-sft/2`, model_uri
    `models:/chat-sft/2`); evaluate stores that and names the version in the table's lineage."""
    from resources.tracking import Tracking

    root, serving = warehouse
    tracking = Tracking(warehouse_root=str(root))
    tracking.setup_for_execution()
    for seed in (1, 2):
        checkpoint = _checkpoint(tmp_path / f"sft-{seed}", chat_tokenizer, seed)
        with tracking.start_run(f"sft-{seed}") as run_id:
            tracking.log_model(run_id, checkpoint, "chat-sft")
    uri = tracking.resolved_tracking_uri
    server = load_server("models:/chat-sft@current", uri)
    assert server.name == "chat-sft/2" and server.served.model_uri == "models:/chat-sft/2"  # was: chat-sft@current
    serving["app"] = create_app(server)
    assert _evaluate(root, "--model", "chat-sft@current") == 0  # asked by the alias, as before
    results = _results(root)
    assert set(zip(results["model"], results["model_uri"], strict=True)) == {("chat-sft/2", "models:/chat-sft/2")}
    stored = read_table(latest_file(root, "safety", "safety_results"), with_lineage=True)
    assert "models:/chat-sft/2" in json.loads(stored["upstream"].iloc[0])
    tracking.set_alias("chat-sft", "current", 1)  # the alias moves: a new server serves version 1
    assert load_server("models:/chat-sft@current", uri).name == "chat-sft/1"
