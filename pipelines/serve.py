"""`reprolab serve`: a chat model of the lab behind an OpenAI-compatible HTTP API (FastAPI + uvicorn).

    reprolab serve models:/chat-sft@current          # a registered model (the warehouse's MLflow store)
    reprolab serve path/to/checkpoint --port 8001     # or a save_pretrained checkpoint directory

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``. A completion request
takes ``model``, ``messages`` (roles system, developer, user, assistant and data; ``tool`` is read as data:
untrusted content), ``n``, ``temperature`` (default 1; 0 is greedy), ``seed``, ``max_tokens`` or
``max_completion_tokens`` (a cap on the answer's tokens), and how much to think: ``reasoning_effort``
(low / medium / high, mapped to budgets as in `assets.chat.budget.EFFORT_BUDGETS`) or ``reasoning_budget`` (a
number of reasoning tokens; a hard cap, at which the reasoning is closed and the answer forced). Each choice's
``message.content`` is the answer and ``message.reasoning_content`` the reasoning; ``usage`` counts prompt,
completion and reasoning tokens, and ``reasoning_budget`` / ``flops`` say what was applied and spent. A bad
request gets a 4xx with an OpenAI-style error body whose message and ``param`` name the field.

Binds to 127.0.0.1 unless told otherwise; ``--api-key-env NAME`` makes it require that key as a bearer token.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_TOKENS = 16
MAX_N = 64
ROLE_ALIASES = {"tool": "data"}  # OpenAI's tool results are untrusted content: the chat format's data role


class CompletionRequest(BaseModel):
    """The body of POST /v1/chat/completions (module docstring); other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")  # other OpenAI fields (top_p, user, ...) are accepted and ignored

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    n: StrictInt = Field(default=1, ge=1, le=MAX_N)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    reasoning_budget: StrictInt | None = Field(default=None, ge=0)
    seed: StrictInt | None = None
    stream: bool | None = False


class RequestError(Exception):
    """A request the server refuses: HTTP status, message, and the request field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def _error_body(message: str, param: str | None, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _field(loc: tuple) -> str:
    """("body", "messages", 0, "role") -> "messages[0].role"."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _text(content: Any, where: str) -> str:
    """Message content as text: a string, or OpenAI's list of {"type": "text", "text": ...} parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(400, f"{where}[{i}]: only text parts ({{'type': 'text', 'text': ...}}) are "
                                        f"supported, got {part!r}", f"{where}[{i}]")
            texts.append(part["text"])
        return " ".join(texts)
    raise RequestError(400, f"{where} must be a string or a list of text parts, got {type(content).__name__}", where)


def conversation(messages: list[dict]) -> list[dict]:
    """The request's messages in the chat format (roles mapped, content as text); RequestError naming the field."""
    from assets.chat.format import validate_messages

    out = []
    for i, message in enumerate(messages):
        role = ROLE_ALIASES.get(message.get("role"), message.get("role"))
        turn = {"role": role, "content": _text(message.get("content"), f"messages[{i}].content")}
        reasoning = message.get("reasoning_content", message.get("reasoning"))
        if reasoning is not None:
            turn["reasoning"] = _text(reasoning, f"messages[{i}].reasoning_content")
        out.append(turn)
    try:
        out = validate_messages(out)
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        raise RequestError(400, str(exc), field if field.startswith("messages") else "messages") from exc
    if out[-1]["role"] == "assistant":
        raise RequestError(400, f"messages[{len(out) - 1}]: the conversation ends with an assistant turn; end it "
                                "with the turn to answer (user, system, developer or data)", f"messages[{len(out) - 1}]")
    return out


class ChatServer:
    """One loaded chat model and tokenizer; `complete` turns a validated request into an OpenAI response."""

    def __init__(self, model: Any, tokenizer: Any, name: str, *, default_effort: str = "medium"):
        from assets.chat.format import chat_token_ids

        if tokenizer is None:
            raise ValueError(f"model {name!r} has no tokenizer in its checkpoint; serve a chat checkpoint")
        try:
            chat_token_ids(tokenizer)
        except ValueError as exc:
            raise ValueError(f"model {name!r} is not a chat model: {exc}") from exc
        self.model, self.tokenizer, self.name, self.default_effort = model, tokenizer, name, default_effort
        self.created = int(time.time())
        self._lock = threading.Lock()  # one generation at a time: the model is not shared across threads

    def budget(self, request: CompletionRequest) -> int:
        from assets.chat.budget import EFFORT_BUDGETS, reasoning_budget

        if request.reasoning_budget is not None and request.reasoning_effort is not None:
            raise RequestError(400, "give reasoning_budget or reasoning_effort, not both", "reasoning_budget")
        if request.reasoning_budget is not None:
            return reasoning_budget(request.reasoning_budget)
        effort = request.reasoning_effort or self.default_effort
        if effort not in EFFORT_BUDGETS:
            raise RequestError(400, f"reasoning_effort must be one of {list(EFFORT_BUDGETS)}, got {effort!r}",
                               "reasoning_effort")
        return EFFORT_BUDGETS[effort]

    def complete(self, request: CompletionRequest) -> dict:
        from assets.chat.budget import generate_with_budget

        if request.model != self.name:
            raise RequestError(404, f"model {request.model!r} is not served here; this server serves {self.name!r}",
                               "model", "not_found_error")
        if request.stream:
            raise RequestError(400, "stream=true is not supported; ask for the whole completion", "stream")
        messages = conversation(request.messages)
        budget = self.budget(request)
        answer_cap = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
        temperature = 1.0 if request.temperature is None else request.temperature
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        try:
            with self._lock:
                samples = generate_with_budget(self.model, self.tokenizer, [messages], budget, k=request.n,
                                               temperature=temperature, max_answer_tokens=answer_cap, seed=seed)
        except ValueError as exc:  # the prompt does not fit the model's positions
            raise RequestError(400, f"messages: {exc}", "messages") from exc
        choices = [{
            "index": int(s.sample_index),
            "message": {"role": "assistant", "content": s.answer or "", "reasoning_content": s.reasoning},
            # the end was forced when the answer reached its cap: OpenAI calls that "length"
            "finish_reason": "length" if s.forced and s.forced[-1] else "stop",
            "reasoning_tokens": int(s.reasoning_tokens),
            "budget_exhausted": bool(s.budget_exhausted),
        } for s in samples.itertuples()]
        prompt_tokens, completion = int(samples["prompt_tokens"].iloc[0]), int(samples["generated_tokens"].sum())
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self.name, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                      "total_tokens": prompt_tokens + completion,
                      "completion_tokens_details": {"reasoning_tokens": int(samples["reasoning_tokens"].sum())}},
            "reasoning_budget": int(samples["budget"].iloc[0]), "flops": float(samples["flops"].sum()),
        }

    def model_card(self) -> dict:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "reprolab"}


def create_app(server: ChatServer, *, api_key: str | None = None):
    """The FastAPI application around a `ChatServer`; with `api_key`, requests need it as a bearer token."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title=f"reprolab: {server.name}", description="OpenAI-compatible chat completions")

    def error(status: int, message: str, param: str | None, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse(status_code=status, content=_error_body(message, param, kind))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        field = _field(tuple(first.get("loc", ())))
        return error(400, f"{field}: {first.get('msg')} (got {first.get('input')!r})", field)

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return error(exc.status, exc.message, exc.param, exc.kind)

    @app.middleware("http")
    async def authorise(request: Request, call_next):
        if api_key is not None and not secrets.compare_digest(  # constant time: the key is not guessed byte by byte
                request.headers.get("authorization", "").encode(), f"Bearer {api_key}".encode()):
            return error(401, "missing or wrong API key (send it as 'Authorization: Bearer <key>')", None,
                         "authentication_error")
        return await call_next(request)

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [server.model_card()]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> dict:
        if model_id != server.name:
            raise RequestError(404, f"model {model_id!r} is not served here; this server serves {server.name!r}",
                               "model", "not_found_error")
        return server.model_card()

    @app.post("/v1/chat/completions")
    def chat_completions(request: CompletionRequest) -> dict:  # sync: runs in the thread pool, off the loop
        return server.complete(request)

    return app


def model_name_for(source: str) -> str:
    """The id a served model answers to: ``chat-sft@current`` for ``models:/chat-sft@current``, a checkpoint
    directory's own name."""
    if source.startswith("models:/"):
        return source.removeprefix("models:/")
    return Path(source).name if Path(source).is_dir() else source


def load_server(source: str, tracking_uri: str, *, device: str = "cpu", name: str | None = None) -> ChatServer:
    """A `ChatServer` for a registered model URI (models:/..., runs:/...) or a local checkpoint directory."""
    from assets.lm.model import load_checkpoint
    from assets.lm.registry import model_dir

    if not Path(source).is_dir():
        if ":/" not in source:
            raise FileNotFoundError(f"{source!r} is neither a model URI (models:/<name>@<alias>, "
                                    "models:/<name>/<version>, runs:/<id>/model) nor a checkpoint directory")
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        if tracking_uri.startswith("sqlite:///") and not store.is_file():
            raise FileNotFoundError(f"no MLflow store at {store}: materialize the chat group first (make demo) or "
                                    "pass --tracking-uri / --warehouse")
        try:
            directory = model_dir(source, tracking_uri)
        except Exception as exc:  # MLflow's own errors: no such model, version or alias
            raise ValueError(f"{source!r} is not in the MLflow store {tracking_uri}: "
                             f"{str(exc).splitlines()[0][:300]}") from exc
    else:
        directory = Path(source)
    model, tokenizer = load_checkpoint(directory, device=device)
    return ChatServer(model, tokenizer, name or model_name_for(source))


def serve(source: str, *, tracking_uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          device: str = "cpu", name: str | None = None, api_key: str | None = None) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    server = load_server(source, tracking_uri, device=device, name=name)
    print(f"serving {server.name!r} on http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(server, api_key=api_key), host=host, port=port, log_level="info")
