"""The chat format: roles, a reasoning channel, and a Jinja chat template saved with the tokenizer.

A conversation is a list of messages `{"role": ..., "content": ...}` with roles

- `system`, `developer`: instructions from the model's deployer, in decreasing authority;
- `user`: the person talking to the model;
- `data`: untrusted content (a web page, a tool result, a retrieved document) that a later study injects into;
- `assistant`: the model's turn, with a reasoning part (`"reasoning"`, or `"reasoning_content"` as in
  vLLM/DeepSeek responses) and a final answer (`"content"`).

Rendered, every turn is a role token, its text and `<|end|>`; the assistant turn is

    <|assistant|> <|reasoning|> step by step ... <|/reasoning|> <|answer|> the answer <|end|>

The generation prompt is `<|assistant|> <|reasoning|>`, so whatever a model writes first is reasoning, and a
budget on it (`assets.chat.budget`) is a count of tokens before `<|/reasoning|>`. The template marks the
assistant's own tokens with `{% generation %}`, so `apply_chat_template(...,
return_assistant_tokens_mask=True)` gives the SFT loss mask straight from transformers, on any checkpoint
that carries the template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SYSTEM, DEVELOPER, USER, DATA, ASSISTANT = (
    "<|system|>",
    "<|developer|>",
    "<|user|>",
    "<|data|>",
    "<|assistant|>",
)
REASONING, END_REASONING, ANSWER, END = "<|reasoning|>", "<|/reasoning|>", "<|answer|>", "<|end|>"
ROLE_TOKENS = {"system": SYSTEM, "developer": DEVELOPER, "user": USER, "data": DATA, "assistant": ASSISTANT}
ROLES = tuple(ROLE_TOKENS)
CHAT_SPECIAL_TOKENS = (*ROLE_TOKENS.values(), REASONING, END_REASONING, ANSWER, END)

# Turns are joined by single spaces: a word-level tokenizer splits on whitespace, and the special tokens
# are cut out before pre-tokenization, so spaces around them never become tokens of their own.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'developer', 'user', 'data', 'assistant'] -%}"
    "{{- raise_exception('unknown role ' ~ message['role'] ~ '; expected system, developer, user, data "
    "or assistant') -}}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set reasoning = message.get('reasoning') or message.get('reasoning_content') or '' -%}"
    "{{- ' <|assistant|> <|reasoning|>' -}}"
    "{%- generation -%}"
    "{%- if reasoning -%}{{- ' ' ~ reasoning -}}{%- endif -%}"
    "{{- ' <|/reasoning|> <|answer|>' -}}"
    "{%- if message['content'] -%}{{- ' ' ~ message['content'] -}}{%- endif -%}"
    "{{- ' <|end|>' -}}"
    "{%- endgeneration -%}"
    "{%- else -%}"
    "{{- ' <|' ~ message['role'] ~ '|>' -}}"
    "{%- if message['content'] -%}{{- ' ' ~ message['content'] -}}{%- endif -%}"
    "{{- ' <|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- ' <|assistant|> <|reasoning|>' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class ChatTokenIds:
    """Ids of the chat format's special tokens in one tokenizer, plus its padding and BOS ids."""

    reasoning: int
    end_reasoning: int
    answer: int
    end: int
    pad: int
    bos: int | None
    roles: dict[str, int]

    @property
    def structural(self) -> tuple[int, ...]:
        """Every chat special token (role tokens included)."""
        return (*self.roles.values(), self.reasoning, self.end_reasoning, self.answer, self.end)


@dataclass(frozen=True)
class AssistantTurn:
    """A parsed assistant turn. closed_reasoning: `<|/reasoning|>` was written; finished: `<|end|>` was."""

    reasoning: str
    answer: str
    reasoning_tokens: int
    closed_reasoning: bool
    finished: bool


def install_chat_format(tokenizer: Any) -> Any:
    """Add the chat special tokens and `CHAT_TEMPLATE` to a tokenizer; returns a `PreTrainedTokenizerFast`.

    `tokenizer` is a `tokenizers.Tokenizer` (as `assets.corpora.tokenization` builds them; it is wrapped with
    the project's <s>/</s>/<pad>/<unk> specials) or a transformers fast tokenizer (changed in place). New
    tokens get ids after the existing vocabulary, so a model for this tokenizer needs `len(tokenizer)`
    embeddings. After `save_pretrained`, `AutoTokenizer.from_pretrained` gives back the template and tokens.
    """
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        from assets.corpora.tokenization import as_fast_tokenizer

        tokenizer = as_fast_tokenizer(tokenizer)
    if not hasattr(tokenizer, "backend_tokenizer"):
        raise ValueError(
            f"install_chat_format needs a tokenizers.Tokenizer or a fast transformers tokenizer, "
            f"got {type(tokenizer).__name__}"
        )
    if tokenizer.pad_token is None:
        raise ValueError("install_chat_format: the tokenizer has no pad_token; batched prompts need one")
    # add_tokens(special_tokens=True) is the same call in transformers 4 and 5 (the keyword for the list of
    # extra special tokens was renamed between them); tokens already present keep their ids.
    tokenizer.add_tokens(list(CHAT_SPECIAL_TOKENS), special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def chat_token_ids(tokenizer: Any) -> ChatTokenIds:
    """The special-token ids of a tokenizer with the chat format installed (clear error if it is not)."""
    vocab = tokenizer.get_vocab()
    absent = [t for t in CHAT_SPECIAL_TOKENS if t not in vocab]
    if absent:
        raise ValueError(f"tokenizer lacks the chat tokens {absent}; call install_chat_format first")
    return ChatTokenIds(
        reasoning=vocab[REASONING],
        end_reasoning=vocab[END_REASONING],
        answer=vocab[ANSWER],
        end=vocab[END],
        pad=tokenizer.pad_token_id,
        bos=tokenizer.bos_token_id,
        roles={role: vocab[token] for role, token in ROLE_TOKENS.items()},
    )


def validate_messages(messages: Sequence[Mapping[str, Any]], *, field: str = "messages") -> list[dict]:
    """Check a conversation's shape; returns it as plain dicts. Raises ValueError naming the bad message.

    A message's text may not hold a chat token (`CHAT_SPECIAL_TOKENS`): the rendered template is tokenized as
    one string, so `<|system|>` written in a user or data message would become the role token itself and forge
    a turn of higher authority. Such text is refused, as tiktoken refuses special tokens in text by default."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"{field} must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"{field}[{i}] must be a dict with 'role' and 'content', got {message!r}")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{field}[{i}].role must be one of {list(ROLES)}, got {role!r}")
        for key in ("content", "reasoning", "reasoning_content"):
            value = message.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{field}[{i}].{key} must be a string, got {type(value).__name__}")
            forged = [t for t in CHAT_SPECIAL_TOKENS if value and t in value]
            if forged:
                raise ValueError(f"{field}[{i}].{key} holds the chat format's token {forged[0]!r}: the tokenizer "
                                 "would read it as that token, so text could open a turn or a channel (a data "
                                 "message posing as the system); remove it from the text")
        out.append(dict(message))
    return out


def assistant_message(reasoning: str, answer: str) -> dict[str, str]:
    """The assistant turn as a message dict."""
    return {"role": "assistant", "reasoning": reasoning, "content": answer}


def prompt_ids(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """Token ids of a conversation followed by the generation prompt `<|assistant|> <|reasoning|>`."""
    messages = validate_messages(messages)
    if messages[-1]["role"] == "assistant":
        raise ValueError("prompt_ids: the conversation already ends with an assistant turn")
    return list(
        tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)[
            "input_ids"
        ]
    )


def encode_conversation(tokenizer: Any, messages: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    """(token ids, assistant mask) of a whole conversation; mask is 1 on the assistant's own tokens.

    The assistant's own tokens are its reasoning, `<|/reasoning|>`, `<|answer|>`, its answer and `<|end|>`:
    everything a model writes after the generation prompt. Role headers and every other turn are 0.
    """
    messages = validate_messages(messages)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("encode_conversation: the conversation has no assistant turn to learn from")
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return list(out["input_ids"]), list(out["assistant_masks"])


def parse_assistant_turn(tokenizer: Any, completion_ids: Sequence[int]) -> AssistantTurn:
    """Split token ids written after the generation prompt into (reasoning, answer).

    Reasoning is everything before `<|/reasoning|>` (all of it if the reasoning was never closed, and then
    the answer is empty); the answer is what follows `<|answer|>` up to `<|end|>`. Special tokens are left
    out of the decoded text. Padding after `<|end|>` is ignored.
    """
    ids = chat_token_ids(tokenizer)
    completion = [int(t) for t in completion_ids]
    finished = ids.end in completion
    if finished:
        completion = completion[: completion.index(ids.end)]
    closed = ids.end_reasoning in completion
    cut = completion.index(ids.end_reasoning) if closed else len(completion)
    reasoning_part, rest = completion[:cut], completion[cut + 1 :]
    if rest and rest[0] == ids.answer:
        rest = rest[1:]

    def text(part: list[int]) -> str:
        return tokenizer.decode(part, skip_special_tokens=True).strip()

    return AssistantTurn(
        reasoning=text(reasoning_part),
        answer=text(rest) if closed else "",
        reasoning_tokens=len(reasoning_part),
        closed_reasoning=closed,
        finished=finished,
    )
