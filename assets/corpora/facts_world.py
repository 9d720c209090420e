"""A seeded world of facts with exact next-token ground truth.

Documents are written by authors (copyright owners plus one public author) as sequences of template
sentences about Zipf-distributed people. Because every law is explicit, the true distribution of the next
word is known at every position: `token_ground_truth` gives its entropy and the probability of the word
actually written, and `next_token_distribution` gives the whole law after any document prefix.

Text is words joined by single spaces, so a whitespace split recovers the word tokens exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from assets.corpora.facts_laws import (
    END_OF_DOCUMENT,
    SPECIAL_TOKENS,
    AuthorLaw,
    FactsWorld,
    FactsWorldSpec,
    build_world,
    vocabulary,
)
from assets.corpora.facts_templates import ATTRIBUTE, END, FILLER, FIXED, NAME, TEMPLATE, Template

__all__ = [
    "END_OF_DOCUMENT", "SPECIAL_TOKENS", "AuthorLaw", "DocumentError", "FactsWorld", "FactsWorldSpec",
    "build_world", "world_from_record", "vocabulary", "sample_documents", "generate_documents", "training_texts",
    "token_ground_truth", "next_token_distribution",
]

DOCUMENT_COLUMNS = ["doc_id", "author", "is_owner", "protected", "duplicate_count", "split", "text",
                    "n_words"]
GROUND_TRUTH_COLUMNS = ["doc_id", "position", "token", "slot", "true_entropy", "is_fact", "true_prob"]

# Separate random streams per purpose, so e.g. asking for more test documents leaves train unchanged.
_SPLIT_STREAMS = (("train", 1), ("validation", 2), ("test", 3))
_PROTECTED_STREAM = 4


class DocumentError(ValueError):
    """A document (or prefix) that this world could not have written."""


def sample_documents(world: FactsWorld, n_documents: int, rng: np.random.Generator,
                     authors: Sequence[int] | None = None,
                     min_sentences: int = 1) -> tuple[np.ndarray, list[list[str]]]:
    """Draw `n_documents` documents from the world's law.

    Returns (author index per document, words per document). `authors` fixes each document's author
    (indices into `world.authors`); by default authors are drawn from the author prior. `min_sentences`
    conditions on at least that many sentences (the geometric law is memoryless, so the rest is unchanged).
    """
    laws = world.authors
    spec = world.spec
    if authors is None:
        priors = np.array([law.prior for law in laws])
        author_ids = rng.choice(len(laws), size=n_documents, p=priors / priors.sum())
    else:
        author_ids = np.asarray(authors, dtype=np.int64)
        if author_ids.shape != (n_documents,) or (author_ids < 0).any() or (author_ids >= len(laws)).any():
            raise ValueError(f"authors must be {n_documents} indices in [0, {len(laws)}), got {authors!r}")
    # Geometric: the number of sentences until the first stop, at least one.
    n_sentences = rng.geometric(spec.stop_probability, size=n_documents) + (min_sentences - 1)
    if spec.max_sentences is not None:
        n_sentences = np.minimum(n_sentences, spec.max_sentences)
    sentence_author = np.repeat(author_ids, n_sentences)
    n_total = len(sentence_author)
    template_ids = np.zeros(n_total, dtype=np.int64)
    person_ids = np.zeros(n_total, dtype=np.int64)
    for a, law in enumerate(laws):
        mask = sentence_author == a
        count = int(mask.sum())
        if count:
            template_ids[mask] = rng.choice(len(law.templates), size=count, p=law.template_probs)
            person_ids[mask] = rng.choice(len(law.person_probs), size=count, p=law.person_probs)
    max_fillers = max(sum(kind == FILLER for kind, _ in t.slots) for law in laws for t in law.templates)
    filler_draws = rng.random((n_total, max(max_fillers, 1)))

    people = world.people["person"].tolist()
    documents: list[list[str]] = []
    sentence = 0
    for d in range(n_documents):
        words: list[str] = []
        for _ in range(int(n_sentences[d])):
            law = laws[int(sentence_author[sentence])]
            words.extend(_render(world, law, law.templates[template_ids[sentence]],
                                 people, int(person_ids[sentence]), filler_draws[sentence]))
            sentence += 1
        documents.append(words)
    return author_ids, documents


def _render(world: FactsWorld, law: AuthorLaw, template: Template, people: list[str], person: int,
            filler_draws: np.ndarray) -> list[str]:
    words = []
    n_fillers_used = 0
    for kind, value in template.slots:
        if kind == NAME:
            words.append(people[person])
        elif kind == ATTRIBUTE:
            words.append(world.attribute_values[value][person])
        elif kind == FILLER:
            options = law.filler_lists[int(value)]
            # floor(u * size) is uniform over the list (up to float resolution).
            words.append(options[min(int(filler_draws[n_fillers_used] * len(options)), len(options) - 1)])
            n_fillers_used += 1
        else:  # template head or fixed word
            words.append(value)
    return words


def generate_documents(world: FactsWorld, spec: FactsWorldSpec | None = None) -> pd.DataFrame:
    """All unique documents of the world, one row each (columns: DOCUMENT_COLUMNS).

    Train, validation and test documents are drawn from the world's law; protected documents are extra
    train documents by the owners (round robin) whose duplicate_count cycles through
    `spec.protected_duplicates`. `spec` defaults to the spec the world was built from; only its document
    counts and seed are used here.
    """
    spec = spec or world.spec
    frames = []
    for split, stream in _SPLIT_STREAMS:
        n = getattr(spec, f"n_{split}_documents")
        author_ids, docs = sample_documents(world, n, np.random.default_rng([spec.seed, stream]))
        frames.append(_document_frame(world, [f"{split}-{i:06d}" for i in range(n)], author_ids, docs,
                                      split=split, protected=False, duplicates=np.ones(n, dtype=np.int64)))
    if spec.n_protected:
        frames.insert(1, _protected_frame(world, spec, taken={t for f in frames for t in f["text"]}))
    return pd.concat(frames, ignore_index=True)[DOCUMENT_COLUMNS]


def _protected_frame(world: FactsWorld, spec: FactsWorldSpec, taken: set[str]) -> pd.DataFrame:
    """Protected documents: owners in turn, long enough, and unlike any other document (redrawn if not)."""
    rng = np.random.default_rng([spec.seed, _PROTECTED_STREAM])
    n_owners = sum(law.is_owner for law in world.authors)
    owners = np.arange(spec.n_protected) % n_owners
    levels = np.asarray(spec.protected_duplicates, dtype=np.int64)
    duplicates = levels[np.arange(spec.n_protected) % len(levels)]
    texts: list[list[str]] = []
    taken = set(taken)
    for owner in owners:
        for _ in range(1000):
            _, (words,) = sample_documents(world, 1, rng, authors=[owner],
                                           min_sentences=spec.protected_min_sentences)
            if " ".join(words) not in taken:
                break
        else:  # only a degenerate world (a handful of possible documents) gets here
            raise ValueError("could not draw a protected document distinct from all others; "
                             "raise protected_min_sentences or make the world larger")
        taken.add(" ".join(words))
        texts.append(words)
    return _document_frame(world, [f"protected-{i:04d}" for i in range(spec.n_protected)], owners, texts,
                           split="train", protected=True, duplicates=duplicates)


def _document_frame(world: FactsWorld, doc_ids: list[str], author_ids: np.ndarray, docs: list[list[str]],
                    split: str, protected: bool, duplicates: np.ndarray) -> pd.DataFrame:
    names = np.array(world.author_names, dtype=object)
    owners = np.array([law.is_owner for law in world.authors], dtype=bool)
    return pd.DataFrame({
        "doc_id": doc_ids,
        "author": names[author_ids] if len(doc_ids) else np.array([], dtype=object),
        "is_owner": owners[author_ids] if len(doc_ids) else np.array([], dtype=bool),
        "protected": np.full(len(doc_ids), protected),
        "duplicate_count": np.asarray(duplicates, dtype=np.int64),
        "split": split,
        "text": [" ".join(words) for words in docs],
        "n_words": np.array([len(words) for words in docs], dtype=np.int64),
    })


def training_texts(documents: pd.DataFrame, seed: int = 0) -> list[str]:
    """The training stream: every train document repeated `duplicate_count` times, in a seeded shuffle
    (so the copies of a protected document are spread through the stream)."""
    _require_columns(documents, ["split", "text", "duplicate_count"], "documents")
    train = documents[documents["split"] == "train"]
    counts = train["duplicate_count"].to_numpy()
    if (counts < 1).any():
        raise ValueError("documents.duplicate_count must be >= 1 for every train document")
    texts = np.repeat(train["text"].to_numpy(dtype=object), counts)
    order = np.random.default_rng(seed).permutation(len(texts))
    return texts[order].tolist()


def _require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")


class _WalkState(NamedTuple):
    author: int  # -1 before the first word
    n_sentences: int  # completed sentences
    template: Template | None  # None at a sentence start
    slot: int  # index of the next slot within `template`
    person: int  # the current sentence's person, -1 before its name


def _walk(world: FactsWorld, words: Sequence[str], label: str, out: list[list] | None) -> _WalkState:
    """Read `words` as a document prefix, checking each against the world's law.

    When `out` is given, appends (slot, true_entropy, true_prob, is_fact) of each position to its four lists.
    Raises DocumentError at the first word the world could not have written there.
    """
    laws = world.authors
    author, n_done, template, slot, person = -1, 0, None, 0, -1
    law = None
    for i, word in enumerate(words):
        if template is None:
            hit = world.head_index.get(word)
            if hit is None:
                raise DocumentError(f"{label}: word {i} {word!r} should start a sentence "
                                    "but is no template head")
            a, t = hit
            if n_done == 0:
                author, law = a, laws[a]
                prob, entropy = world.first_word_probs.get(word, 0.0), world.first_word_entropy
            else:
                if a != author:
                    raise DocumentError(f"{label}: word {i} {word!r} is a template of {laws[a].name}, "
                                        f"but the document is by {laws[author].name}")
                stop = world.stop_probability_after(n_done)
                if stop >= 1.0:
                    raise DocumentError(f"{label}: word {i} {word!r} continues past max_sentences="
                                        f"{world.spec.max_sentences}")
                prob = (1.0 - stop) * float(law.template_probs[t])
                entropy = world.sentence_start_entropy(author, n_done)
            template, slot, person = law.templates[t], 1, -1
            row = (TEMPLATE, entropy, prob, False)
        else:
            kind, value = template.slots[slot]
            if kind == NAME:
                person = world.person_index.get(word, -1)
                if person < 0:
                    raise DocumentError(f"{label}: word {i} {word!r} should be a person's name")
                row = (NAME, law.person_entropy, float(law.person_probs[person]), False)
            elif kind == ATTRIBUTE:
                expected = world.attribute_values[value][person]
                if word != expected:
                    raise DocumentError(f"{label}: word {i} {word!r} contradicts the fact "
                                        f"{value}={expected!r} of {world.people['person'].iat[person]}")
                row = (ATTRIBUTE, 0.0, 1.0, True)
            elif kind == FILLER:
                k = int(value)
                if word not in world.filler_sets[author][k]:
                    raise DocumentError(f"{label}: word {i} {word!r} is not in {law.name}'s filler list {k}")
                size = len(law.filler_lists[k])
                row = (FILLER, math.log(size), 1.0 / size, False)
            else:
                if word != value:
                    raise DocumentError(f"{label}: word {i} {word!r} should be the fixed word {value!r}")
                row = (FIXED, 0.0, 1.0, False)
            slot += 1
        if out is not None:
            for column, item in zip(out, row, strict=True):
                column.append(item)
        if slot == len(template.slots):
            template, slot, n_done = None, 0, n_done + 1
    return _WalkState(author, n_done, template, slot, person)


def token_ground_truth(world: FactsWorld, documents: pd.DataFrame) -> pd.DataFrame:
    """The true next-word law at every position of every document (columns: GROUND_TRUTH_COLUMNS).

    One row per word (position = 0-based word index) plus one final "</s>" row per document at
    position n_words, whose law is the sentence-start law (stop or another template). Entropies are in
    nats; true_prob is the probability of the realised token. slot is one of
    template|name|attribute|filler|fixed|end; is_fact marks attribute slots (deterministic facts).
    Raises DocumentError if a text is not one the world could have written.
    """
    _require_columns(documents, ["doc_id", "text"], "documents")
    columns: list[list] = [[], [], [], []]
    tokens: list[str] = []
    lengths = []
    for doc_id, text in zip(documents["doc_id"], documents["text"], strict=True):
        words = text.split()
        label = f"document {doc_id!r}"
        state = _walk(world, words, label, columns)
        if state.template is not None or state.n_sentences == 0:
            raise DocumentError(f"{label} ends in the middle of a sentence (or is empty)")
        end_row = (END, world.sentence_start_entropy(state.author, state.n_sentences),
                   world.stop_probability_after(state.n_sentences), False)
        for column, item in zip(columns, end_row, strict=True):
            column.append(item)
        tokens.extend(words)
        tokens.append(END_OF_DOCUMENT)
        lengths.append(len(words) + 1)
    lengths_arr = np.asarray(lengths, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths_arr) - lengths_arr, lengths_arr)
    return pd.DataFrame({
        "doc_id": np.repeat(documents["doc_id"].to_numpy(dtype=object), lengths_arr),
        "position": np.arange(int(lengths_arr.sum()), dtype=np.int64) - starts,
        "token": tokens,
        "slot": columns[0],
        "true_entropy": np.asarray(columns[1], dtype=np.float64),
        "is_fact": np.asarray(columns[3], dtype=bool),
        "true_prob": np.asarray(columns[2], dtype=np.float64),
    })[GROUND_TRUTH_COLUMNS]


def next_token_distribution(world: FactsWorld, prefix_words: Sequence[str]) -> dict[str, float]:
    """The exact law of the next word after a document prefix (a list of words; a leading "<s>" is
    ignored). After a complete sentence the law includes "</s>" (end of document). Only words with
    positive probability are listed; the values sum to 1."""
    words = list(prefix_words)
    if words and words[0] == SPECIAL_TOKENS[1]:
        words = words[1:]
    if not all(isinstance(w, str) for w in words):
        raise ValueError("prefix_words must be a list of strings")
    if END_OF_DOCUMENT in words:
        raise DocumentError(f"prefix contains {END_OF_DOCUMENT!r}: the document has already ended")
    state = _walk(world, words, "prefix", None)
    if state.template is None:
        if state.n_sentences == 0:
            return dict(world.first_word_probs)
        law = world.authors[state.author]
        stop = world.stop_probability_after(state.n_sentences)
        result = {END_OF_DOCUMENT: stop}
        for template, p in zip(law.templates, law.template_probs, strict=True):
            if (1.0 - stop) * p > 0:
                result[template.head] = (1.0 - stop) * float(p)
        return result
    law = world.authors[state.author]
    kind, value = state.template.slots[state.slot]
    if kind == NAME:
        names = world.people["person"].tolist()
        return {names[i]: float(p) for i, p in enumerate(law.person_probs) if p > 0}
    if kind == ATTRIBUTE:
        return {world.attribute_values[value][state.person]: 1.0}
    if kind == FILLER:
        options = law.filler_lists[int(value)]
        return {w: 1.0 / len(options) for w in options}
    return {value: 1.0}


def world_from_record(record: dict) -> FactsWorld:
    """Rebuild the (deterministic) world from a ``facts_world`` record's spec."""
    return build_world(FactsWorldSpec(**record["spec"]))
