"""The chat client reads what an endpoint says about itself: the model id it answered with, the reasoning budget
it applied (our server's `reasoning_budget`; other endpoints' replies have none), and its models-list entry
with the fields beyond the OpenAI ones. Responses are built with the `openai` package's own types, as the
client receives them."""

from types import SimpleNamespace

import openai
from openai.types import Model
from openai.types.chat import ChatCompletion

from assets.chat.client import Endpoint, chat, model_card
from assets.safety.battery import endpoint_responder

ENDPOINT = Endpoint("http://127.0.0.1:9/v1", model="chat-sft@current")
USER = [{"role": "user", "content": "compute 1 + 2"}]


def _completion(model: str, **extra) -> ChatCompletion:
    return ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "3", "reasoning_content": "one plus two"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}, **extra})


class _Completions:
    """chat.completions of a client whose endpoint answers every request with `response`; records the requests."""

    def __init__(self, response):
        self.response, self.calls = response, []

    def create(self, **kwargs):
        self.calls.append(kwargs)
        return self.response


def _client(response, listed=None):
    models = None if listed is None else SimpleNamespace(list=lambda: listed)
    return SimpleNamespace(chat=SimpleNamespace(completions=_Completions(response)), models=models)


def test_the_applied_budget_and_the_answering_model_are_read_from_the_response():
    # ours: the alias asked is answered by a version, and the budget applied is said (was: dropped)
    ours = chat(ENDPOINT, USER, reasoning_budget=8, client=_client(_completion("chat-sft/3", reasoning_budget=6)))
    assert ours.model == "chat-sft/3" and ours.reasoning_budget == 6
    assert ours.replies[0].answer == "3" and ours.replies[0].reasoning == "one plus two"
    # another endpoint (vLLM, OpenAI) says nothing of a budget: None, not 0
    other = chat(ENDPOINT, USER, reasoning_effort="low", client=_client(_completion("Qwen/Qwen3-0.6B")))
    assert other.model == "Qwen/Qwen3-0.6B" and other.reasoning_budget is None
    odd = chat(ENDPOINT, USER, client=_client(_completion("m", reasoning_budget="a lot")))
    assert odd.reasoning_budget is None  # no number: not recorded as one


def test_the_battery_records_the_endpoints_applied_budget_and_model():
    client = _client(_completion("chat-sft/3", reasoning_budget=6))
    respond = endpoint_responder(ENDPOINT, client=client, reasoning_budget=8, max_tokens=4)
    reply = respond([USER])[0]
    assert reply["applied_budget"] == 6 and reply["model"] == "chat-sft/3" and reply["content"] == "3"
    assert client.chat.completions.calls[0]["extra_body"] == {"reasoning_budget": 8}
    plain = endpoint_responder(ENDPOINT, client=_client(_completion("gpt-x")))([USER])[0]
    assert plain["applied_budget"] is None and plain["model"] == "gpt-x"


def test_model_card_gives_the_listed_entry_with_its_extra_fields():
    ours = Model.model_validate({"id": "checkpoint-100@1a2b3c4d", "object": "model", "created": 0,
                                 "owned_by": "reprolab", "model_uri": "/runs/a/checkpoint-100",
                                 "source": "/runs/a/checkpoint-100", "weights_sha256": "1a2b3c4d" + "0" * 56})
    vllm = Model.model_validate({"id": "Qwen/Qwen3-0.6B", "object": "model", "created": 0, "owned_by": "vllm",
                                 "root": "/models/qwen"})
    client = _client(None, listed=[vllm, ours])
    card = model_card(ENDPOINT, "checkpoint-100@1a2b3c4d", client)
    assert card["model_uri"] == "/runs/a/checkpoint-100" and card["weights_sha256"].startswith("1a2b3c4d")
    assert model_card(ENDPOINT, "Qwen/Qwen3-0.6B", client).get("model_uri") is None  # vLLM's: no model_uri
    assert model_card(ENDPOINT, "not-listed", client) == {}
    assert model_card(ENDPOINT, "x", _client(None)) == {}  # no models list at all

    def missing():
        raise openai.NotFoundError("404", response=SimpleNamespace(status_code=404, headers={}, request=None),
                                   body=None)

    assert model_card(ENDPOINT, "x", SimpleNamespace(models=SimpleNamespace(list=missing))) == {}
