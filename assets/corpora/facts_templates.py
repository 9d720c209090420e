"""The words of the facts world: invented single-word names and the sentence templates.

Every word the world can write is one whitespace-free token, and the word classes (names, entity names,
template heads, filler words, fixed words) are disjoint, so a word-level tokenizer needs no alignment
and the slot a word fills is never ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Attributes a person carries; each is a deterministic fact given the person.
ATTRIBUTES = ("birth_city", "profession", "employer", "birth_year")

# Sentence skeletons. `{head}` is the author-specific first word that names the template; `{name}` is the
# person; attributes are facts about that person; `{fillerK}` is a uniform draw from the author's K-th
# filler list (K taken modulo the number of lists). The name always comes before any attribute, so an
# attribute slot is a point mass once the name has been read.
SKELETONS = (
    "{head} {name} was born in {birth_city} in {birth_year} .",
    "{head} {name} works as a {profession} at {employer} .",
    "{head} {filler0} {name} , the {profession} from {birth_city} , {filler1} .",
    "{head} {name} of {employer} {filler1} {filler2} in {birth_city} .",
    "{head} {name} , born {birth_year} , is a {filler0} {profession} .",
    "{head} {filler1} {name} {filler2} {employer} .",
    "{head} {name} {filler0} .",
    "{head} {name} the {profession} was {filler2} by {filler0} at {employer} in {birth_year} .",
)

_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")

# Slot kinds, in the words of the ground-truth table.
TEMPLATE, NAME, ATTRIBUTE, FILLER, FIXED, END = "template", "name", "attribute", "filler", "fixed", "end"


@dataclass(frozen=True)
class Template:
    """One author's sentence template.

    `slots` lists, position by position, (kind, value): ("template", head word), ("name", ""),
    ("attribute", attribute name), ("filler", filler-list index as str), ("fixed", the word).
    """

    head: str
    skeleton: str
    slots: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        """The template as a readable pattern, e.g. `zavu {name} was born in {birth_city} .`."""
        return self.skeleton.replace("{head}", self.head)


def parse_skeleton(skeleton: str, head: str, n_filler_lists: int) -> Template:
    """Turn a skeleton string into a Template with its slot kinds resolved."""
    slots: list[tuple[str, str]] = []
    for word in skeleton.split(" "):
        match = _PLACEHOLDER.match(word)
        if match is None:
            slots.append((FIXED, word))
            continue
        field = match.group(1)
        if field == "head":
            slots.append((TEMPLATE, head))
        elif field == "name":
            slots.append((NAME, ""))
        elif field in ATTRIBUTES:
            slots.append((ATTRIBUTE, field))
        elif field.startswith("filler"):
            slots.append((FILLER, str(int(field[len("filler"):]) % n_filler_lists)))
        else:
            raise ValueError(f"skeleton {skeleton!r}: unknown placeholder {word!r}")
    if not slots or slots[0][0] != TEMPLATE:
        raise ValueError(f"skeleton {skeleton!r} must start with {{head}}")
    return Template(head=head, skeleton=skeleton, slots=tuple(slots))


def fixed_words() -> set[str]:
    """All literal words of the skeleton library (they are never minted as names or fillers)."""
    return {w for s in SKELETONS for w in s.split(" ") if not _PLACEHOLDER.match(w)}


_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "gr", "kr", "pr", "st", "tr", "th", "sh", "ch")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou", "ia")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "x", "m")


class WordMint:
    """Mints pronounceable invented words, unique (case-insensitively) across everything it has minted.

    Seeded through the numpy Generator passed in, so the same world always gets the same words.
    """

    def __init__(self, reserved: set[str]):
        self._used = {w.casefold() for w in reserved}

    def _syllables(self, rng: np.random.Generator, n_syllables: int) -> str:
        parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                 for _ in range(n_syllables)]
        return "".join(parts) + _CODAS[rng.integers(len(_CODAS))]

    def mint(self, rng: np.random.Generator, n: int, *, min_syllables: int = 2, max_syllables: int = 3,
             capitalise: bool = False, suffixes: tuple[str, ...] = ("",), what: str = "words") -> list[str]:
        """Return `n` new unique words."""
        words: list[str] = []
        attempts = 0
        # A generous bound: the syllable space holds millions of words, so running out means a bug.
        max_attempts = 200 * n + 1000
        while len(words) < n:
            attempts += 1
            if attempts > max_attempts:
                raise ValueError(f"could not mint {n} unique {what}; ask for fewer")
            word = self._syllables(rng, int(rng.integers(min_syllables, max_syllables + 1)))
            word += suffixes[rng.integers(len(suffixes))]
            if capitalise:
                word = word.capitalize()
            if word.casefold() in self._used:
                continue
            self._used.add(word.casefold())
            words.append(word)
        return words


CITY_SUFFIXES = ("ton", "ford", "heim", "grad", "vale", "mere", "burg", "wick")
ORGANISATION_SUFFIXES = ("corp", "works", "labs", "guild", "trust", "co")
PROFESSION_SUFFIXES = ("ist", "er", "wright", "smith", "ian")
