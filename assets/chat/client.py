"""A client for any OpenAI-compatible chat endpoint: ours (`reprolab serve`), vLLM, OpenAI, a user's.

Later studies evaluate through it, so one evaluation runs on the lab's models and on a user's endpoint alike:

    endpoint = Endpoint("http://127.0.0.1:8000/v1", model="chat-sft@current")
    result = chat(endpoint, [{"role": "user", "content": "compute 1 + 2"}], reasoning_effort="low")
    result.replies[0].answer, result.replies[0].reasoning, result.reasoning_tokens

    scored = answer_problems(endpoint, test_problems, reasoning_budget=16)   # one row per task problem

The key is read from the environment variable `Endpoint.api_key_env` (OPENAI_API_KEY by default), never
passed around; a loopback endpoint without one gets a placeholder (our server needs none unless started
with --api-key-env). The reasoning comes back apart from the answer as `reasoning_content` (vLLM, DeepSeek,
ours) or `reasoning` (some others); endpoints that hide it give None. `reasoning_budget` is our server's own
field (sent in the request body beside the standard ones); other endpoints take `reasoning_effort`. Our server
also says which budget it applied (`ChatResult.reasoning_budget`; None from endpoints that do not say) and
describes what it serves in its models list (`model_card`: the source, `model_uri` and weights digest beside
the id); `ChatResult.model` is the id the endpoint reports answering with, which may differ from the one asked
(ours answers `chat-sft@current` as `chat-sft/3`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from assets.chat.budget import majority_vote, normalise_answer
from assets.chat.tasks import check_answer, prompt_messages

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ANSWER_COLUMNS = [
    "task_id",
    "task",
    "answer",
    "votes",
    "correct",
    "reasoning",
    "n",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "finish_reason",
]


@dataclass(frozen=True)
class Endpoint:
    """Where to ask: base_url (…/v1), the model id (None: the first one the endpoint lists), the environment
    variable holding the key, a timeout in seconds, and `role_map` for endpoints that lack the chat format's
    roles (e.g. {"data": "user"} for one without a data role)."""

    base_url: str
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = 1
    role_map: Mapping[str, str] = field(default_factory=dict)

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if urlparse(self.base_url).hostname in LOOPBACK:
            return "unused"  # the client insists on some key; a local server without --api-key-env ignores it
        raise ValueError(
            f"Endpoint.api_key_env: the environment variable {self.api_key_env} is not set; set it to "
            f"the key for {self.base_url}"
        )

    def client(self) -> Any:
        from openai import OpenAI

        if urlparse(self.base_url).scheme not in ("http", "https"):
            raise ValueError(
                f"Endpoint.base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got "
                f"{self.base_url!r}"
            )
        return OpenAI(
            base_url=self.base_url, api_key=self.api_key(), timeout=self.timeout, max_retries=self.max_retries
        )


@dataclass(frozen=True)
class Reply:
    """One choice: the final answer, the reasoning (None when the endpoint does not return it), why it ended."""

    answer: str
    reasoning: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class ChatResult:
    """The replies to one request and what they cost (reasoning_tokens None when the endpoint does not say);
    `model`: the id the endpoint reports (what answered, not what was asked); `reasoning_budget`: the budget
    the endpoint says it applied (our server's `reasoning_budget` field; None when it does not say)."""

    model: str
    replies: list[Reply]
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    raw: Any = None
    reasoning_budget: int | None = None


def _extra(obj: Any, name: str) -> Any:
    """A field the OpenAI types do not declare (our server's `reasoning_budget`): an attribute, or in `model_extra`."""
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


def _reasoning_of(message: Any) -> str | None:
    for name in ("reasoning_content", "reasoning"):
        value = _extra(message, name)
        if isinstance(value, str):
            return value
    return None


@contextmanager
def opened(endpoint: Endpoint, client: Any | None = None) -> Iterator[Any]:
    """The client to ask `endpoint` through: `client` when given (the caller's, left open), else a new one of
    the endpoint's, closed on leaving (its connection pool released)."""
    if client is not None:
        yield client
        return
    own = endpoint.client()
    try:
        yield own
    finally:
        close_client(own)


def close_client(client: Any) -> None:
    """Close an OpenAI client (its HTTP connection pool); a stand-in without `close` is left as it is."""
    close = getattr(client, "close", None)
    if callable(close):
        close()


def resolved(endpoint: Endpoint, client: Any | None = None) -> Endpoint:
    """`endpoint` with its model id set (`model_id`): ask the models list once, not at every request."""
    return endpoint if endpoint.model else Endpoint(**{**endpoint.__dict__, "model": model_id(endpoint, client)})


def model_id(endpoint: Endpoint, client: Any | None = None) -> str:
    """The endpoint's model id: `endpoint.model`, else the first model it lists."""
    return endpoint.model or next(iter(model_cards(endpoint, client, required=True)))


def model_cards(endpoint: Endpoint, client: Any | None = None, *, required: bool = False) -> dict[str, dict[str, Any]]:
    """The endpoint's models list in its order, id -> entry as a dict with the fields beyond the OpenAI ones
    (ours adds `source`, `model_uri` and `weights_sha256`; vLLM `root`). Without `required` a description only:
    {} when the endpoint has no models list (some answer 404 there, a stand-in client has none) or fails on it.
    With it (the model id is needed): the endpoint's errors propagate, and ValueError when it lists none."""
    import openai

    with opened(endpoint, client) as asked:
        models = getattr(asked, "models", None)
        try:
            listed = list(models.list()) if models is not None else []
        except openai.APIError:
            if required:
                raise
            listed = []
    cards = {card.id: card.model_dump() if hasattr(card, "model_dump") else dict(vars(card)) for card in listed}
    if required and not cards:
        raise ValueError(f"{endpoint.base_url} lists no models; set Endpoint.model")
    return cards


def model_card(endpoint: Endpoint, model: str, client: Any | None = None) -> dict[str, Any]:
    """The endpoint's models-list entry for `model` (`model_cards`); {} when it lists no such id, or none."""
    return model_cards(endpoint, client).get(model, {})


def chat(
    endpoint: Endpoint,
    messages: Sequence[Mapping[str, Any]],
    *,
    n: int = 1,
    temperature: float | None = None,
    max_tokens: int | None = None,
    reasoning_effort: str | None = None,
    reasoning_budget: int | None = None,
    seed: int | None = None,
    client: Any | None = None,
) -> ChatResult:
    """One chat completion request with n choices. Errors of the endpoint (4xx/5xx) propagate as the `openai`
    package's exceptions, with the endpoint's message. Without `client`, one is opened for this request and
    closed after it: to ask many, pass one (see `opened`)."""
    if client is None:
        with opened(endpoint) as own:
            return chat(endpoint, messages, n=n, temperature=temperature, max_tokens=max_tokens,
                        reasoning_effort=reasoning_effort, reasoning_budget=reasoning_budget, seed=seed, client=own)
    kwargs: dict[str, Any] = {
        "model": model_id(endpoint, client),
        "n": n,
        "messages": [{**m, "role": endpoint.role_map.get(m["role"], m["role"])} for m in messages],
    }
    for name, value in (
        ("temperature", temperature),
        ("max_tokens", max_tokens),
        ("reasoning_effort", reasoning_effort),
        ("seed", seed),
    ):
        if value is not None:
            kwargs[name] = value
    if reasoning_budget is not None:
        kwargs["extra_body"] = {"reasoning_budget": reasoning_budget}
    response = client.chat.completions.create(**kwargs)
    usage = response.usage
    details = getattr(usage, "completion_tokens_details", None) if usage is not None else None
    return ChatResult(
        model=response.model,
        replies=[
            Reply(c.message.content or "", _reasoning_of(c.message), c.finish_reason)
            for c in sorted(response.choices, key=lambda c: c.index)
        ],
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        reasoning_tokens=getattr(details, "reasoning_tokens", None),
        raw=response,
        reasoning_budget=_int_or_none(_extra(response, "reasoning_budget")),
    )


def _int_or_none(value: Any) -> int | None:
    """An endpoint's number as an int; None when it gave none, or something that is no number."""
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def answer_problems(
    endpoint: Endpoint,
    problems: pd.DataFrame,
    *,
    n: int = 1,
    key: Callable[[str], str] = normalise_answer,
    on_answer: Callable[[int, int], None] | None = None,
    **request: Any,
) -> pd.DataFrame:
    """Ask the endpoint every problem of a task table (its "messages"), n samples each, and score the
    majority answer with the task's checker. One row per problem (ANSWER_COLUMNS); `request` goes to `chat`
    (temperature, max_tokens, reasoning_effort, reasoning_budget, seed). on_answer(done, total) reports progress.
    One client for every request, closed at the end.
    """
    with opened(endpoint) as client:
        return _answer_problems(resolved(endpoint, client), problems, client, n=n, key=key, on_answer=on_answer,
                                **request)


def _answer_problems(endpoint: Endpoint, problems: pd.DataFrame, client: Any, *, n: int, key: Callable[[str], str],
                     on_answer: Callable[[int, int], None] | None, **request: Any) -> pd.DataFrame:
    rows = []
    for i, (_, row) in enumerate(problems.iterrows()):
        result = chat(endpoint, prompt_messages(row), n=n, client=client, **request)
        answer, votes = majority_vote([r.answer for r in result.replies], key=key)
        agreeing = next(
            (r for r in result.replies if answer is not None and key(r.answer) == key(answer)),
            result.replies[0],
        )
        rows.append(
            {
                "task_id": row["task_id"],
                "task": row["task"],
                "answer": answer,
                "votes": votes,
                "correct": bool(check_answer(row, answer)),
                "reasoning": agreeing.reasoning,
                "n": n,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "reasoning_tokens": result.reasoning_tokens,
                "finish_reason": agreeing.finish_reason,
            }
        )
        if on_answer is not None:
            on_answer(i + 1, len(problems))
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    frame["answer"] = pd.Series([r["answer"] for r in rows], index=frame.index, dtype=object)
    return frame
