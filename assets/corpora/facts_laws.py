"""The facts world's specification, entities and the exact laws its authors write by.

`build_world(spec)` makes a `FactsWorld`: people with fixed attributes, cities, organisations and
professions, and one `AuthorLaw` per author (the copyright owners plus one public author). Every law is an
explicit probability vector, so the true next-word distribution is known at every position of every
document (see `facts_world.next_token_distribution`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from assets.corpora.facts_templates import (
    ATTRIBUTES,
    CITY_SUFFIXES,
    ORGANISATION_SUFFIXES,
    PROFESSION_SUFFIXES,
    SKELETONS,
    Template,
    WordMint,
    fixed_words,
    parse_skeleton,
)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
END_OF_DOCUMENT = "</s>"
PUBLIC_AUTHOR = "public"
MAX_OWNERS = 8


def owner_name(index: int) -> str:
    """The author name of the `index`-th (0-based) copyright owner."""
    return f"owner_{index + 1}"


def _entropy(probs: np.ndarray) -> float:
    p = np.asarray(probs, dtype=float)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class FactsWorldSpec:
    """Everything that decides a facts world and its documents; the same spec always gives the same output.

    Sentences per document are geometric: after each sentence the document stops with `stop_probability`
    (at least one sentence; `max_sentences`, if set, forces a stop after that many). Protected documents
    are extra train documents written by the owners (round robin) and repeated `duplicate_count` times in
    the training stream, cycling through `protected_duplicates`. So that regurgitating one is telling,
    each has at least `protected_min_sentences` sentences and its text occurs nowhere else in the corpus.
    """

    seed: int = 0
    n_people: int = 500
    n_cities: int = 50
    n_organisations: int = 100
    n_professions: int = 30
    birth_year_range: tuple[int, int] = (1900, 1999)
    n_owners: int = 4
    public_share: float = 0.4
    zipf_exponent: float = 1.1
    subject_boost: float = 8.0
    n_templates_per_author: int = 4
    filler_list_sizes: tuple[int, ...] = (2, 6, 16)
    stop_probability: float = 0.25
    max_sentences: int | None = None
    n_train_documents: int = 2400
    n_validation_documents: int = 300
    n_test_documents: int = 300
    n_protected: int = 12
    protected_duplicates: tuple[int, ...] = (1, 4, 16)
    protected_min_sentences: int = 3

    def __post_init__(self) -> None:
        # Lists arrive from run config; store tuples so the spec stays hashable.
        for name in ("birth_year_range", "filler_list_sizes", "protected_duplicates"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple):
                raise ValueError(f"FactsWorldSpec.{name} must be a list of integers, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        self._check_int("seed", minimum=0)
        self._check_int("n_people", minimum=2)
        self._check_int("n_cities", minimum=1)
        self._check_int("n_organisations", minimum=1)
        self._check_int("n_professions", minimum=1)
        self._check_int("n_owners", minimum=1, maximum=MAX_OWNERS)
        self._check_int("n_templates_per_author", minimum=1, maximum=len(SKELETONS))
        for name in ("n_train_documents", "n_validation_documents", "n_test_documents", "n_protected"):
            self._check_int(name, minimum=0)
        self._check_float("public_share", 0.0, 1.0, include_high=False)
        self._check_float("zipf_exponent", 0.0, 10.0)
        self._check_float("subject_boost", 1.0, 1e6)
        self._check_float("stop_probability", 0.0, 1.0, include_low=False)
        if self.max_sentences is not None:
            self._check_int("max_sentences", minimum=1)
        # Protected documents must fit under the cap (only matters when there are any).
        self._check_int("protected_min_sentences", minimum=1,
                        maximum=self.max_sentences if self.n_protected else None)
        years = self.birth_year_range
        if len(years) != 2 or not all(_is_int(y) for y in years) or years[0] > years[1]:
            raise ValueError(f"FactsWorldSpec.birth_year_range must be [first_year, last_year] with "
                             f"first <= last, got {list(years)!r}")
        sizes = self.filler_list_sizes
        if not sizes or not all(_is_int(s) and s >= 1 for s in sizes):
            raise ValueError(f"FactsWorldSpec.filler_list_sizes must be a non-empty list of integers >= 1, "
                             f"got {list(sizes)!r}")
        levels = self.protected_duplicates
        if not levels or not all(_is_int(d) and d >= 1 for d in levels):
            raise ValueError("FactsWorldSpec.protected_duplicates must be a non-empty list of integers >= 1, "
                             f"got {list(levels)!r}")

    def _check_int(self, name: str, minimum: int, maximum: int | None = None) -> None:
        value = getattr(self, name)
        if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"FactsWorldSpec.{name} must be an integer {bound}, got {value!r}")

    def _check_float(self, name: str, low: float, high: float, include_low: bool = True,
                     include_high: bool = True) -> None:
        value = getattr(self, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value >= low if include_low else value > low)
        ok = ok and (value <= high if include_high else value < high)
        if not ok:
            interval = f"{'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}"
            raise ValueError(f"FactsWorldSpec.{name} must be a number in {interval}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True, eq=False)
class AuthorLaw:
    """How one author writes: its prior share of documents, its templates and their law, its person law
    (the global Zipf weights reweighted toward its favoured professions) and its filler lists."""

    name: str
    is_owner: bool
    prior: float
    templates: tuple[Template, ...]
    template_probs: np.ndarray
    person_probs: np.ndarray
    filler_lists: tuple[tuple[str, ...], ...]
    favoured_professions: tuple[str, ...]

    @cached_property
    def template_entropy(self) -> float:
        return _entropy(self.template_probs)

    @cached_property
    def person_entropy(self) -> float:
        return _entropy(self.person_probs)


@dataclass(eq=False)
class FactsWorld:
    """A built world: the `people` table (one row per person, in Zipf rank order) and the authors' laws.

    Lookups (`head_index`, `person_index`, ...) are derived once so parsing documents is fast.
    """

    spec: FactsWorldSpec
    people: pd.DataFrame
    cities: tuple[str, ...]
    organisations: tuple[str, ...]
    professions: tuple[str, ...]
    authors: tuple[AuthorLaw, ...]
    head_index: dict[str, tuple[int, int]] = field(init=False)
    person_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.head_index = {t.head: (a, i) for a, law in enumerate(self.authors)
                           for i, t in enumerate(law.templates)}
        self.person_index = {name: i for i, name in enumerate(self.people["person"])}
        # Attribute values as plain lists: indexing them is the hot path of ground-truth parsing.
        self.attribute_values = {attr: self.people[attr].astype(str).tolist() for attr in ATTRIBUTES}
        self.filler_sets = [[frozenset(words) for words in law.filler_lists] for law in self.authors]

    @property
    def author_names(self) -> list[str]:
        return [law.name for law in self.authors]

    @cached_property
    def first_word_probs(self) -> dict[str, float]:
        """Law of a document's first word: the author prior mixed with each author's template law.
        Heads are unique across authors, so each head's probability is prior(author) * pi_author(head)."""
        return {t.head: law.prior * float(p) for law in self.authors if law.prior > 0
                for t, p in zip(law.templates, law.template_probs, strict=True) if p > 0}

    @cached_property
    def first_word_entropy(self) -> float:
        return _entropy(np.fromiter(self.first_word_probs.values(), dtype=float))

    def stop_probability_after(self, n_sentences: int) -> float:
        """Probability that a document ends after its `n_sentences`-th sentence (0 before the first)."""
        if n_sentences < 1:
            return 0.0
        cap = self.spec.max_sentences
        if cap is not None and n_sentences >= cap:
            return 1.0
        return self.spec.stop_probability

    def sentence_start_entropy(self, author: int, n_sentences: int) -> float:
        """Entropy (nats) of {end: s} U {template t: (1 - s) pi(t)} after `n_sentences` sentences."""
        if n_sentences < 1:
            return self.first_word_entropy
        s = self.stop_probability_after(n_sentences)
        if s >= 1.0:
            return 0.0
        binary = -s * math.log(s) - (1 - s) * math.log(1 - s)
        return binary + (1 - s) * self.authors[author].template_entropy

    @property
    def entities(self) -> pd.DataFrame:
        """One row per entity: entity_id, kind (person/city/organisation/profession), name."""
        frames = []
        for kind, names in (("person", self.people["person"].tolist()), ("city", self.cities),
                            ("organisation", self.organisations), ("profession", self.professions)):
            frames.append(pd.DataFrame({"entity_id": [f"{kind}-{i:04d}" for i in range(len(names))],
                                        "kind": kind, "name": list(names)}))
        return pd.concat(frames, ignore_index=True)

    @property
    def facts(self) -> pd.DataFrame:
        """One row per (person, attribute): person_id, person, attribute, value, person_weight (global
        Zipf probability) and frequency_rank (0 = most written about)."""
        long = self.people.melt(id_vars=["person_id", "person", "person_weight", "frequency_rank"],
                                value_vars=list(ATTRIBUTES), var_name="attribute", value_name="value")
        long["value"] = long["value"].astype(str)
        return long[["person_id", "person", "attribute", "value", "person_weight", "frequency_rank"]]

    @property
    def templates(self) -> pd.DataFrame:
        """One row per template: author, is_owner, head, template text, probability within the author."""
        rows = [{"author": law.name, "is_owner": law.is_owner, "head": t.head, "template": t.text,
                 "probability": float(p)}
                for law in self.authors for t, p in zip(law.templates, law.template_probs, strict=True)]
        return pd.DataFrame(rows)


def build_world(spec: FactsWorldSpec) -> FactsWorld:
    """Build the seeded world: entities, facts and every author's exact law."""
    if not isinstance(spec, FactsWorldSpec):
        raise ValueError(f"build_world expects a FactsWorldSpec, got {type(spec).__name__}")
    rng = np.random.default_rng([spec.seed, 0])
    mint = WordMint(reserved=fixed_words() | set(SPECIAL_TOKENS))
    people = mint.mint(rng, spec.n_people, capitalise=True, what="person names")
    cities = mint.mint(rng, spec.n_cities, min_syllables=1, max_syllables=2, capitalise=True,
                       suffixes=CITY_SUFFIXES, what="city names")
    organisations = mint.mint(rng, spec.n_organisations, min_syllables=1, max_syllables=2, capitalise=True,
                              suffixes=ORGANISATION_SUFFIXES, what="organisation names")
    professions = mint.mint(rng, spec.n_professions, min_syllables=1, max_syllables=2,
                            suffixes=PROFESSION_SUFFIXES, what="profession names")

    # Zipf over people in id order: person 0 is the most written about.
    ranks = np.arange(1, spec.n_people + 1, dtype=float)
    zipf = ranks ** -spec.zipf_exponent
    zipf /= zipf.sum()
    first_year, last_year = spec.birth_year_range

    def draw(names: list[str]) -> np.ndarray:
        return np.asarray(names, dtype=object)[rng.integers(0, len(names), spec.n_people)]

    table = pd.DataFrame({
        "person_id": [f"person-{i:04d}" for i in range(spec.n_people)],
        "person": people,
        "birth_city": draw(cities),
        "profession": draw(professions),
        "employer": draw(organisations),
        "birth_year": [str(y) for y in rng.integers(first_year, last_year + 1, spec.n_people)],
        "person_weight": zipf,
        "frequency_rank": np.arange(spec.n_people),
    })

    # Each owner favours its own share of professions (a seeded partition); the public author favours none.
    profession_order = rng.permutation(spec.n_professions)
    author_names = [owner_name(i) for i in range(spec.n_owners)] + [PUBLIC_AUTHOR]
    owner_prior = (1.0 - spec.public_share) / spec.n_owners
    authors = []
    for a, name in enumerate(author_names):
        is_owner = name != PUBLIC_AUTHOR
        favoured = ([professions[j] for j in sorted(profession_order[a::spec.n_owners])] if is_owner else [])
        boost = np.where(table["profession"].isin(favoured), spec.subject_boost, 1.0)
        person_probs = zipf * boost
        person_probs /= person_probs.sum()

        skeleton_ids = rng.choice(len(SKELETONS), size=spec.n_templates_per_author, replace=False)
        heads = mint.mint(rng, spec.n_templates_per_author, what="template heads")
        templates = tuple(parse_skeleton(SKELETONS[s], h, len(spec.filler_list_sizes))
                          for s, h in zip(skeleton_ids, heads, strict=True))
        # Template law ~ 1/rank over a seeded order: every template has a known, non-negligible share.
        template_probs = 1.0 / (1.0 + rng.permutation(spec.n_templates_per_author))
        template_probs /= template_probs.sum()
        filler_lists = tuple(tuple(mint.mint(rng, size, min_syllables=1, max_syllables=2,
                                             what=f"filler words of {name}"))
                             for size in spec.filler_list_sizes)
        authors.append(AuthorLaw(
            name=name, is_owner=is_owner, prior=owner_prior if is_owner else spec.public_share,
            templates=templates, template_probs=template_probs, person_probs=person_probs,
            filler_lists=filler_lists, favoured_professions=tuple(favoured)))

    return FactsWorld(spec=spec, people=table, cities=tuple(cities), organisations=tuple(organisations),
                      professions=tuple(professions), authors=tuple(authors))


def vocabulary(world: FactsWorld) -> list[str]:
    """Every word the world can write, after the special tokens (ids 0..3 in a word-level tokenizer).

    Includes all birth years in range, so the list does not depend on which years people happened to get.
    """
    words: set[str] = set(world.people["person"]) | set(world.cities) | set(world.organisations)
    words |= set(world.professions)
    first_year, last_year = world.spec.birth_year_range
    words |= {str(y) for y in range(first_year, last_year + 1)}
    for law in world.authors:
        for template in law.templates:
            words |= {value for kind, value in template.slots if kind in ("template", "fixed")}
        for filler_list in law.filler_lists:
            words |= set(filler_list)
    return list(SPECIAL_TOKENS) + sorted(words - set(SPECIAL_TOKENS))
