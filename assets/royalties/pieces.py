"""The pieces whose revenue is shared: generations prompted in each owner's style, generations from a neutral
prompt, and real held-out documents.

A style prompt is the first `n_prompt_words` words of one of the owner's training documents (in the facts
world the first word names one of the author's own templates), drawn with the frequencies they have in the
owner's documents: the prompt gives the piece's source away. Neutral pieces start from the same empty prompt
(<s> alone) for every owner; their source is the author whose training documents the piece copies most
(`attribute_source`: the share of its word 1- to 3-grams found there, then the longest shared run of words).
Generations are sampled from the all-owners model; held-out pieces are the owner's test documents. Every
piece is kept within the model's context (whole sentences where possible) and scored as log p(piece | <s>),
summed over its tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PIECE_COLUMNS = ["piece_id", "kind", "source_owner", "prompt", "text", "n_tokens"]
SENTENCE_END = "."
NEUTRAL_PROMPT = ""  # no words: generation starts from <s> alone, the same prompt for every owner
COPY_MAX_N = 3  # attribution: overlap of the piece's 1- to 3-grams with an author's training data
NEUTRAL_SEED_OFFSET = 1000  # the neutral pieces' sampling seed, apart from the style prompts' seed + owner index


def style_prompts(documents: pd.DataFrame, author: str, n: int, rng: np.random.Generator, n_prompt_words: int = 1,
                  author_column: str = "author") -> list[str]:
    """`n` prompts in `author`'s style: the opening words of the author's train documents, drawn at random."""
    if not isinstance(n_prompt_words, int) or n_prompt_words < 1:
        raise ValueError(f"n_prompt_words must be a positive int, got {n_prompt_words!r}")
    texts = documents.loc[(documents[author_column] == author) & (documents["split"] == "train"), "text"]
    if texts.empty:
        raise ValueError(f"no train documents by author {author!r} to take style prompts from")
    openings = [" ".join(t.split()[:n_prompt_words]) for t in texts]
    return [openings[i] for i in rng.integers(0, len(openings), size=n)]


class _BanTokens:
    """A logits processor that forbids some token ids (the special tokens other than end-of-document). Their
    index tensor is copied to the scores' device once (``placed``: device -> index), not at every token."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = list(token_ids)
        self.placed: dict[Any, Any] = {}

    def __call__(self, input_ids, scores):
        import torch

        if scores.device not in self.placed:
            with torch.inference_mode(False):
                self.placed[scores.device] = torch.tensor(self.token_ids, dtype=torch.long, device=scores.device)
        scores[:, self.placed[scores.device]] = float("-inf")
        return scores


def _special_ids(tokenizer: Any) -> list[int]:
    ids = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id}
    return sorted(i for i in ids if i is not None)


def generate_pieces(model: Any, tokenizer: Any, prompts: dict[str, list[str]], max_new_tokens: int, *,
                    max_sentences: int | None = None, temperature: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Sample one piece per prompt from `model` (columns: PIECE_COLUMNS, kind "generated").

    `prompts` maps the owner whose style is prompted to its prompts. Generation stops at end-of-document or
    after `max_new_tokens`; special tokens other than end-of-document are never sampled. The piece is the
    prompt words plus the generated words (without <s> and </s>), cut after `max_sentences` sentences if set.
    """
    if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
        raise ValueError(f"max_sentences must be None or a positive int, got {max_sentences!r}")
    import torch

    from assets.lm.inference import generate

    rows = []
    eos = tokenizer.eos_token_id
    for owner_index, (owner, owner_prompts) in enumerate(prompts.items()):
        if not owner_prompts:
            continue
        encoded = [tokenizer(p)["input_ids"] for p in owner_prompts]
        lengths = {len(e) for e in encoded}
        if len(lengths) != 1:  # equal-length prompts batch without padding
            raise ValueError(f"prompts of {owner!r} must have equal token lengths, got {sorted(lengths)}")
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and lengths.pop() + max_new_tokens > limit:
            raise ValueError(f"max_new_tokens={max_new_tokens} plus the prompt exceeds the model context {limit}")
        out = generate(model, torch.tensor(encoded), max_new_tokens, temperature=temperature, eos_token_id=eos,
                       seed=seed + owner_index, logits_processors=[_BanTokens(_special_ids(tokenizer))])
        for i, (prompt, ids) in enumerate(zip(owner_prompts, out.tolist(), strict=True)):
            ids = ids[1:]  # drop <s>
            if eos in ids:
                ids = ids[: ids.index(eos)]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if max_sentences is not None:
                text = first_sentences(text, max_sentences)
            rows.append({"piece_id": f"gen-{owner}-{i:03d}", "kind": "generated", "source_owner": owner,
                         "prompt": prompt, "text": text, "n_tokens": len(tokenizer(text)["input_ids"]) - 1})
    return pd.DataFrame(rows, columns=PIECE_COLUMNS)


def first_sentences(text: str, n: int) -> str:
    """The first `n` sentences of `text` (words up to the n-th "."), or all of it if it has fewer."""
    words = text.split()
    ends = [i + 1 for i, w in enumerate(words) if w == SENTENCE_END]
    return " ".join(words[: ends[n - 1]] if len(ends) >= n else words)


def opening_words(documents: pd.DataFrame, author_column: str = "author") -> dict[str, str]:
    """Each word that opens some author's train documents, mapped to that author. In the facts world these are
    exactly the authors' template heads, which open every sentence, so they mark whose style a sentence is in."""
    train = documents[documents["split"] == "train"]
    firsts = train["text"].str.split(n=1).str[0]
    owners = pd.DataFrame({"word": firsts, "author": train[author_column]}).drop_duplicates()
    clash = owners[owners["word"].duplicated(keep=False)]
    if not clash.empty:
        raise ValueError(f"opening words shared by several authors: {sorted(clash['word'].unique())[:5]}")
    return dict(zip(owners["word"], owners["author"], strict=True))


def style_fraction(text: str, author: str, openings: dict[str, str]) -> float:
    """Of the sentences of `text` that open with some author's opening word, the fraction in `author`'s style
    (NaN when none does)."""
    styles = [openings[w] for w in text.split() if w in openings]
    return float(np.mean([s == author for s in styles])) if styles else float("nan")


def truncate_to_sentences(text: str, max_words: int) -> str:
    """The longest prefix of whole sentences (ending in ".") within `max_words` words; a hard cut if even the
    first sentence is longer."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    ends = [i + 1 for i, w in enumerate(words[:max_words]) if w == SENTENCE_END]
    return " ".join(words[: ends[-1] if ends else max_words])


def held_out_pieces(documents: pd.DataFrame, owners: Sequence[str], n_per_owner: int, max_words: int,
                    rng: np.random.Generator, author_column: str = "author") -> pd.DataFrame:
    """`n_per_owner` of each owner's test documents, drawn at random (columns: PIECE_COLUMNS, kind "held_out")."""
    rows = []
    for owner in owners:
        texts = documents.loc[(documents[author_column] == owner) & (documents["split"] == "test"), "text"].tolist()
        if len(texts) < n_per_owner:
            raise ValueError(f"author {owner!r} has {len(texts)} test documents; n_held_out_per_owner={n_per_owner}")
        for i, j in enumerate(rng.choice(len(texts), size=n_per_owner, replace=False)):
            text = truncate_to_sentences(texts[j], max_words)
            rows.append({"piece_id": f"doc-{owner}-{i:03d}", "kind": "held_out", "source_owner": owner,
                         "prompt": "", "text": text, "n_tokens": len(text.split())})
    return pd.DataFrame(rows, columns=PIECE_COLUMNS)


def author_corpus(documents: pd.DataFrame, author: str, author_column: str = "author") -> str:
    """`author`'s train documents as one searchable string: each document's words between spaces, one per line
    (so a run of words found in it never straddles two documents)."""
    texts = documents.loc[(documents[author_column] == author) & (documents["split"] == "train"), "text"]
    return "\n".join(f" {' '.join(t.split())} " for t in texts)


def _found(words: Sequence[str], corpus: str) -> bool:
    return f" {' '.join(words)} " in corpus


def longest_shared_run(words: Sequence[str], corpus: str) -> int:
    """The length (in words) of the longest run of consecutive `words` that occurs in `corpus` (two pointers:
    every part of a run that occurs occurs too)."""
    best, i, j = 0, 0, 1
    while j <= len(words):
        if i < j and _found(words[i:j], corpus):
            best, j = max(best, j - i), j + 1
        else:
            i += 1
            j = max(j, i + 1)
    return best


def ngram_overlap(words: Sequence[str], corpus: str, n: int) -> float:
    """The fraction of the word `n`-grams of `words` that occur in `corpus` (NaN when it has none)."""
    grams = [words[i:i + n] for i in range(len(words) - n + 1)]
    return float(np.mean([_found(g, corpus) for g in grams])) if grams else float("nan")


def copied_overlap(words: Sequence[str], corpus: str, max_n: int = COPY_MAX_N) -> float:
    """How much of `words` occurs in `corpus`: the mean over n = 1..max_n of the fraction of its n-grams found
    there (orders longer than the text left out; 0 for an empty text)."""
    fractions = [f for n in range(1, max_n + 1) if not math.isnan(f := ngram_overlap(words, corpus, n))]
    return float(np.mean(fractions)) if fractions else 0.0


def attribute_source(text: str, corpora: dict[str, str]) -> tuple[str, int]:
    """The author whose training data `text` copies most, and the longest run of words it shares with it: the
    n-gram overlap (`copied_overlap`) decides, the longest shared run breaks ties; "" when still tied (or
    nothing is shared). Sentence skeletons are shared between authors, so the longest run alone often ties;
    the authors' own words (template heads, fillers) and the n-grams around them do not."""
    words = text.split()
    scores = {a: (copied_overlap(words, c), longest_shared_run(words, c)) for a, c in corpora.items()}
    best = max(scores.values(), default=(0.0, 0))
    winners = [a for a, s in scores.items() if s == best]
    return (winners[0] if len(winners) == 1 and best[0] > 0 else ""), int(best[1])


def neutral_pieces(generator: Any, tokenizer: Any, documents: pd.DataFrame, candidates: Sequence[str], n: int,
                   max_new_tokens: int, *, max_sentences: int | None = None, temperature: float = 1.0,
                   seed: int = 0) -> pd.DataFrame:
    """`n` pieces sampled from the same neutral prompt (kind "neutral"), each attributed to the candidate author
    whose train documents it copies most (`source_owner`, "" when tied; `copied_words`: the longest shared run).
    Empty samples (end-of-document at once) are dropped."""
    if n < 1:
        return pd.DataFrame(columns=[*PIECE_COLUMNS, "copied_words"])
    sampled = generate_pieces(generator, tokenizer, {"neutral": [NEUTRAL_PROMPT] * n}, max_new_tokens,
                              max_sentences=max_sentences, temperature=temperature, seed=seed + NEUTRAL_SEED_OFFSET)
    sampled = sampled[sampled["n_tokens"] > 0].reset_index(drop=True)
    corpora = {a: author_corpus(documents, a) for a in candidates}
    attributed = [attribute_source(t, corpora) for t in sampled["text"]]
    return sampled.assign(piece_id=[f"neutral-{i:03d}" for i in range(len(sampled))], kind="neutral",
                          source_owner=[a for a, _ in attributed], copied_words=[k for _, k in attributed])


def piece_log_likelihoods(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """log p(text | <s>) under `model` for each text, in nats (summed over the text's tokens)."""
    from assets.lm.inference import sequence_logprob

    bos = tokenizer.bos_token_id
    continuations = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        ids = ids[1:] if ids and ids[0] == bos else ids
        if not ids:
            raise ValueError(f"piece {text!r} has no tokens to score")
        continuations.append(ids)
    scores = sequence_logprob(model, [[bos]] * len(continuations), continuations, batch_size=batch_size)
    return scores.numpy().astype(np.float64)


def build_pieces(documents: pd.DataFrame, owners: Sequence[str], generator: Any, tokenizer: Any, *,
                 n_generated_per_owner: int, n_held_out_per_owner: int, context_length: int, prompt_words: int = 1,
                 max_new_tokens: int = 24, piece_sentences: int | None = 1, temperature: float = 1.0,
                 control_authors: Sequence[str] = (), n_neutral: int = 0, base_authors: Sequence[str] = (),
                 seed: int = 0) -> pd.DataFrame:
    """The batch of pieces: `generator`'s samples prompted in each owner's style (and each control author's),
    `n_neutral` samples from the neutral prompt attributed among the owners and `base_authors` (the authors
    whose data the generator saw), plus each owner's held-out documents, every piece within `context_length`
    tokens. Adds `prompted_style_fraction` (the fraction of the piece's sentences written in the source
    author's templates), `sentence_limit` (generated pieces cut after that many sentences; 0: not cut) and,
    for generated pieces, `attributed_source` / `copied_words` (`attribute_source`: whose data the piece
    copies most; for neutral pieces that is their `source_owner`)."""
    rng = np.random.default_rng([seed, 7])
    styles = list(owners) + [a for a in control_authors if a not in owners]
    prompts = {a: style_prompts(documents, a, n_generated_per_owner, rng, prompt_words) for a in styles}
    max_new = min(max_new_tokens, context_length - 1 - prompt_words)
    generated = generate_pieces(generator, tokenizer, prompts, max_new, max_sentences=piece_sentences,
                                temperature=temperature, seed=seed)
    candidates = list(owners) + [a for a in base_authors if a not in owners]
    corpora = {a: author_corpus(documents, a) for a in candidates}
    attributed = [attribute_source(t, corpora) for t in generated["text"]]
    generated = generated.assign(attributed_source=[a for a, _ in attributed], copied_words=[k for _, k in attributed])
    neutral = neutral_pieces(generator, tokenizer, documents, candidates, n_neutral, min(max_new_tokens, context_length - 1),
                             max_sentences=piece_sentences, temperature=temperature, seed=seed)
    neutral = neutral.assign(attributed_source=neutral["source_owner"])
    held_out = held_out_pieces(documents, owners, n_held_out_per_owner, context_length - 1, rng)
    pieces = pd.concat([df for df in (generated, neutral, held_out) if len(df)], ignore_index=True)
    pieces["attributed_source"] = pieces["attributed_source"].fillna("")
    pieces["copied_words"] = pieces["copied_words"].astype(float)
    openings = opening_words(documents)
    purity = [style_fraction(t, a, openings) for t, a in zip(pieces["text"], pieces["source_owner"], strict=True)]
    limit = np.where(pieces["kind"] != "held_out", piece_sentences or 0, 0)  # 0: no sentence limit
    return pieces.assign(prompted_style_fraction=purity, sentence_limit=limit.astype(np.int64))
