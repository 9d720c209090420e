"""`reprolab serve`: a chat model of the lab behind an OpenAI-compatible HTTP API (FastAPI + uvicorn).

    reprolab serve models:/chat-sft@current          # a registered model (the warehouse's MLflow store)
    reprolab serve path/to/checkpoint --port 8001     # or a save_pretrained checkpoint directory

What is served has an identity that changes when the weights change (`identify`): a registry alias is resolved
to its version (``models:/chat-sft@current`` serves ``chat-sft/3``, model_uri ``models:/chat-sft/3``), a
checkpoint directory is named by its folder and a digest of its weights files (``checkpoint-100@1a2b3c4d``: the
first 8 hex digits of the sha256 of ``model.safetensors``, or of its shards in name order; model_uri the
directory's absolute path). That id is the one listed, and reported in each response's ``model``, so
`reprolab evaluate` keys what it stores by the model actually served; ``--name`` replaces it (an explicit name
wins). Requests may ask by the id, the name given, or what was served (``chat-sft@current``, the folder's name).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_TOKENS = 16
DIGEST_CHARS = 8  # hex digits of the weights' sha256 in a checkpoint's id
NAME_HELP = ("the model id the server lists and reports in each response's `model`, which `reprolab evaluate` "
             "stores as the model's name (default: an identity that changes with the weights: <name>/<version> "
             "for a registered model, <folder>@<8 hex digits of the weights' sha256> for a checkpoint directory); "
             "an explicit name wins, so the weights' digest is then only in /v1/models: new weights served from "
             "the same place under the same name replace the earlier model's evaluation rows")
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


@dataclass(frozen=True)
class ServedModel:
    """What a server serves, as its clients see it: `id` (listed, and reported in each response's ``model``),
    `model_uri` (where it loads from again: ``models:/<name>/<version>``, ``runs:/...``, or the checkpoint
    directory's absolute path), `source` (what `reprolab serve` was given), `weights_sha256` (of its weights
    files, in name order) and `aliases` (other names a request may ask it by)."""

    id: str
    model_uri: str
    source: str
    weights_sha256: str
    aliases: tuple[str, ...] = ()

    def card(self) -> dict[str, str]:
        """The fields /v1/models lists beside the OpenAI ones."""
        return {"source": self.source, "model_uri": self.model_uri, "weights_sha256": self.weights_sha256}


class ChatServer:
    """One loaded chat model and tokenizer; `complete` turns a validated request into an OpenAI response.
    `served` (from `identify`) says what it is; `name` is the id it answers to and reports (its `served.id`
    unless a name was given), and a request may also ask by one of `served`'s aliases."""

    def __init__(self, model: Any, tokenizer: Any, name: str, *, default_effort: str = "medium",
                 served: ServedModel | None = None):
        from assets.chat.format import chat_token_ids

        if tokenizer is None:
            raise ValueError(f"model {name!r} has no tokenizer in its checkpoint; serve a chat checkpoint")
        try:
            chat_token_ids(tokenizer)
        except ValueError as exc:
            raise ValueError(f"model {name!r} is not a chat model: {exc}") from exc
        self.model, self.tokenizer, self.name, self.default_effort = model, tokenizer, name, default_effort
        self.served = served
        self.names = {name, *((served.id, *served.aliases) if served else ())}  # what a request may ask for
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

        self.check_model(request.model)
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

    def check_model(self, model: str) -> None:
        """RequestError 404 unless ``model`` is a name this server answers to."""
        if model not in self.names:
            others = sorted(self.names - {self.name})
            raise RequestError(404, f"model {model!r} is not served here; this server serves {self.name!r}"
                                    + (f" (also asked as {', '.join(map(repr, others))})" if others else ""),
                               "model", "not_found_error")

    def model_card(self) -> dict:
        """The /v1/models entry: the OpenAI fields, and what is served (`ServedModel.card`) when known."""
        card = {"id": self.name, "object": "model", "created": self.created, "owned_by": "reprolab"}
        return {**card, **self.served.card()} if self.served else card


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
        server.check_model(model_id)
        return server.model_card()

    @app.post("/v1/chat/completions")
    def chat_completions(request: CompletionRequest) -> dict:  # sync: runs in the thread pool, off the loop
        return server.complete(request)

    return app


def model_name_for(source: str) -> str:
    """The short name of what was asked to be served, which a request may use: ``chat-sft@current`` for
    ``models:/chat-sft@current``, a checkpoint directory's own name (the id is `identify`'s)."""
    if source.startswith("models:/"):
        return source.removeprefix("models:/")
    return Path(source).name if Path(source).is_dir() else source


def weights_sha256(directory: Path) -> str:
    """The sha256 (hex) of a checkpoint's weights files read in name order: its ``*.safetensors`` files, else
    its ``pytorch_model*.bin`` (Trainer state beside them, ``optimizer.pt`` and the like, is not the model).
    One ``model.safetensors``: the same digest as ``sha256sum model.safetensors``."""
    import hashlib

    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("pytorch_model*.bin"))
    if not files:
        raise ValueError(f"checkpoint directory {directory} has no weights file (*.safetensors or "
                         "pytorch_model*.bin) to identify it by")
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def identify(source: str, tracking_uri: str) -> tuple[ServedModel, Path]:
    """What ``source`` serves (`ServedModel`, module docstring) and the checkpoint directory to load it from. A
    registry alias is resolved to its version once, here, and that version loaded (an alias moved meanwhile
    does not change what is served); ``runs:/`` URIs name one run's files and are their own id."""
    from assets.lm.registry import client_for, model_dir

    if Path(source).is_dir():
        directory = Path(source).resolve()
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"checkpoint directory {directory} has no config.json (not a save_pretrained "
                                    "checkpoint)")
        digest = weights_sha256(directory)
        return ServedModel(f"{directory.name}@{digest[:DIGEST_CHARS]}", str(directory), source, digest,
                           tuple(dict.fromkeys((directory.name, source, str(directory))))), directory
    if ":/" not in source:
        raise FileNotFoundError(f"{source!r} is neither a model URI (models:/<name>@<alias>, "
                                "models:/<name>/<version>, runs:/<id>/model) nor a checkpoint directory")
    store = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and not store.is_file():
        raise FileNotFoundError(f"no MLflow store at {store}: materialize the chat group first (make demo) or "
                                "pass --tracking-uri / --warehouse")
    try:
        model_uri, served_id = source, source
        ref = source.removeprefix("models:/")
        if source.startswith("models:/") and "@" in ref:
            registered, alias = ref.split("@", 1)
            version = client_for(tracking_uri).get_model_version_by_alias(registered, alias).version
            model_uri, served_id = f"models:/{registered}/{version}", f"{registered}/{version}"
        elif source.startswith("models:/"):
            served_id = ref
        directory = model_dir(model_uri, tracking_uri)
    except Exception as exc:  # MLflow's own errors: no such model, version or alias
        raise ValueError(f"{source!r} is not in the MLflow store {tracking_uri}: "
                         f"{str(exc).splitlines()[0][:300]}") from exc
    aliases = tuple(dict.fromkeys(a for a in (model_name_for(source), source, model_uri) if a != served_id))
    return ServedModel(served_id, model_uri, source, weights_sha256(directory), aliases), directory


def load_server(source: str, tracking_uri: str, *, device: str = "cpu", name: str | None = None) -> ChatServer:
    """A `ChatServer` for a registered model URI (models:/..., runs:/...) or a local checkpoint directory,
    answering to `identify`'s id, or to ``name`` when one is given."""
    from assets.lm.model import load_checkpoint

    served, directory = identify(source, tracking_uri)
    model, tokenizer = load_checkpoint(directory, device=device)
    return ChatServer(model, tokenizer, name or served.id, served=served)


def serve(source: str, *, tracking_uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          device: str = "cpu", name: str | None = None, api_key: str | None = None) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    server = load_server(source, tracking_uri, device=device, name=name)
    served = server.served
    print(f"serving {server.name!r} ({served.model_uri}, weights sha256 {served.weights_sha256[:16]}...) on "
          f"http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(server, api_key=api_key), host=host, port=port, log_level="info")
