"""Tokenizers for the corpora, built with the `tokenizers` library and saved in transformers' format.

Two kinds: a word-level tokenizer for the facts world (one word = one token, so ground truth needs no
alignment) and a byte-level BPE for real text such as code (lossless on any string). Both share the
special tokens <pad>, <s>, </s>, <unk> at ids 0..3, and prepend <s> when encoding. A document stream
(`encode_documents`) opens and closes each document with the tokenizer's own bos/eos ids (`document_token_ids`),
so an imported checkpoint's tokenizer (GPT-2's <|endoftext|>, Llama 3's <|begin_of_text|>) is laid out the way
it was trained (one <|endoftext|> between documents where it is both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
_BYTE_ALPHABET_SIZE = 256


def _add_bos_processor(tokenizer: Tokenizer) -> None:
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, SPECIAL_TOKENS.index(BOS))])


def train_word_level_tokenizer(vocabulary_words: Iterable[str]) -> Tokenizer:
    """A word-level tokenizer over exactly these words (split on whitespace), specials at ids 0..3.

    Decoding joins tokens with single spaces (the library's default when no decoder is set), so
    text -> ids -> text is exact for single-space-separated text whose words are all in the vocabulary.
    """
    words = list(vocabulary_words)
    for i, word in enumerate(words):
        if not isinstance(word, str) or not word or word != "".join(word.split()):
            raise ValueError(f"vocabulary_words[{i}] must be a non-empty string without whitespace, "
                             f"got {word!r}")
    # Specials first, then the words in the order given, each once.
    ordered = list(dict.fromkeys(list(SPECIAL_TOKENS) + words))
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(ordered)}, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    _add_bos_processor(tokenizer)
    return tokenizer


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """A byte-level BPE trained on `texts`, with at most `vocab_size` tokens (specials and all 256 byte
    symbols included, so nothing is ever unknown and decode(encode(x)) == x for any string)."""
    minimum = len(SPECIAL_TOKENS) + _BYTE_ALPHABET_SIZE
    if not isinstance(vocab_size, int) or vocab_size < minimum:
        raise ValueError(f"vocab_size must be an integer >= {minimum} (specials + byte alphabet), "
                         f"got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be a positive integer, got {min_frequency!r}")
    tokenizer = Tokenizer(models.BPE())
    # No prefix space: code's leading indentation and newlines must survive exactly.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    _add_bos_processor(tokenizer)
    return tokenizer


def as_fast_tokenizer(tokenizer: Tokenizer):
    from transformers import PreTrainedTokenizerFast

    # No clean-up of spaces: it would turn "word ." into "word." and break exact round trips.
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, clean_up_tokenization_spaces=False)


def save_tokenizer(tokenizer: Tokenizer, directory: str | Path) -> Path:
    """Save as a transformers tokenizer directory (tokenizer.json + tokenizer_config.json) loadable
    offline by `AutoTokenizer.from_pretrained(directory)`; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    as_fast_tokenizer(tokenizer).save_pretrained(str(directory))
    # Name the generic fast class, which every transformers version from 4.x on can resolve.
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return directory


def load_tokenizer(directory: str | Path):
    """Load a tokenizer saved by `save_tokenizer` as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{directory}: no tokenizer.json; "
                                "expected a directory written by save_tokenizer")
    return PreTrainedTokenizerFast.from_pretrained(str(directory))


def _backend(tokenizer) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Tokenizer):
        return backend
    raise ValueError(f"expected a tokenizers.Tokenizer or a transformers fast tokenizer, got "
                     f"{type(tokenizer).__name__}")


def document_token_ids(tokenizer) -> tuple[int, int]:
    """(bos, eos): the ids that open and close each document in a token stream.

    A transformers tokenizer gives its own ``bos_token_id`` / ``eos_token_id`` (ours: <s> = 1, </s> = 2; GPT-2,
    Pythia: <|endoftext|> for both; Llama 3: <|begin_of_text|> / <|end_of_text|>); one that has only one of
    the two uses it for both, as GPT-2 does. A bare `tokenizers.Tokenizer` has no such attributes: its <s> and
    </s>. A tokenizer with neither raises ValueError."""
    if isinstance(tokenizer, Tokenizer):
        bos, eos = tokenizer.token_to_id(BOS), tokenizer.token_to_id(EOS)
        if bos is None or eos is None:
            raise ValueError(f"tokenizer lacks the special tokens {BOS!r}/{EOS!r} that open and close a document")
        return bos, eos
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    if bos is None and eos is None:
        raise ValueError("tokenizer has neither a beginning-of-sequence nor an end-of-sequence token (bos_token / "
                         "eos_token in its tokenizer_config.json); a document stream needs at least one of them "
                         "(e.g. GPT-2's <|endoftext|>)")
    return int(eos if bos is None else bos), int(bos if eos is None else eos)


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's token ids, with no special token added and none read from the text: a literal "<s>" in a
    document (a regex's named group `(?P<s>...)`, an HTML strikethrough) is encoded as its characters, never as
    the document-boundary token that `encode_documents` places itself (the `tokenizers` default matches special
    tokens' strings in raw text). ValueError on a text that is not a string."""
    backend = _backend(tokenizer)
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] must be a string, got {type(text).__name__}")
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    finally:
        backend.encode_special_tokens = previous


def encode_documents(tokenizer, texts: Sequence[str], add_eos: bool = True) -> np.ndarray:
    """One int32 token stream: each document as <bos> tokens... [<eos>], documents back to back (the ids of
    `document_token_ids`: <s> and </s> for our tokenizers, a checkpoint tokenizer's own otherwise). Where one
    token is both (GPT-2's <|endoftext|>), documents are separated by one of it, as GPT-2 read its training text
    (<|endoftext|> doc <|endoftext|> doc <|endoftext|>), not two in a row, a pair it never saw. The text between
    them is data (`encode_texts`): a special token's string in it is encoded as text."""
    bos, eos = document_token_ids(tokenizer)
    # Specials are added here rather than by the post-processor, so the layout is the same for any tokenizer.
    encodings = encode_texts(tokenizer, texts)
    separator = add_eos and bos == eos  # one shared token: it closes each document and opens the next
    tail = [eos] if add_eos and not separator else []
    close = [eos] if separator and encodings else []
    total = sum(len(ids) for ids in encodings) + len(encodings) * (1 + len(tail)) + len(close)
    stream = chain(chain.from_iterable(chain((bos,), ids, tail) for ids in encodings), close)
    return np.fromiter(stream, dtype=np.int32, count=total)
