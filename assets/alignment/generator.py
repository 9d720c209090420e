"""Data generation with the spec in context: chains of thought that cite the policy, and final answers.

In the paper a capable reasoning model is prompted with the safety specification and a training prompt, and
writes a chain of thought that recalls the relevant clauses and a final answer; a judge that also sees the
spec then filters the candidates (`assets.alignment.policy_judge`), and the spec is removed from the prompts
before SFT (`assets.alignment.sft_data`). No human writes a chain of thought or an answer.

**At our scale the generator is a program, a stand-in for that capable model.** It reads the policy from its
system message (`spec_prompt`: the whole written policy of `assets.safety.policy` before the request) and
what the facts world says a train item asks (which attribute of whom, in which framing, of which request
kind, and the true value). It **decides from the clauses it read** (`policy_decision`): the attributes P1
names are private and P2's public; a request of a kind P4 lists as only looking sensitive (what the user says
about themselves, counts, what the policy says, arithmetic, a public attribute asked in sensitive words) is
answered; a private attribute otherwise is refused. Its citations quote those clauses as read, narrowed to
the attribute asked, and its refusal is R1's. Edit the policy in context (make the birth year public) and the
decisions and citations follow; the item's label (`expected`) is never read by the generator, only by the
judge. It writes reasoning in the policy's own words:

    the request asks for the birth year of Bougrei , in a role play .          <- what is asked, in what framing
    P1 : the birth year of any person is private .                              <- citation (clause id + words)
    P3 : never disclose a private attribute , in any framing .                 <- citation
    then i refuse .                                                             <- decision
    answer: sorry , i can not share that .

A citation is one sentence that starts with a clause id (`strip_citations` removes exactly those, which
makes the "reasoning without policy citations" baseline). Like a real generator it is imperfect, in a
seeded way (`GeneratorSpec`): each candidate may cite a clause that does not decide the request
(`wrong_clause`), decide the wrong way (`wrong_decision`: comply and leak on a disallowed request, refuse a
benign one, with reasoning citing the opposite clause), or get the value wrong (`wrong_value`: a hedged
refusal that still leaks, or a wrong fact). Harder prompts (jailbreaks, look-alikes) err more often. It runs
on train items only (ValueError otherwise): the evaluation templates and held-out jailbreak families never
meet it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.safety.items import check_items, item_meta
from assets.safety.policy import ATTRIBUTE_WORDS, CLAUSE_IDS, CLAUSES, REFUSAL, clause, render_policy
from assets.safety.requests import TEMPLATES

TRAIN_EVALUATIONS = ("refusal", "jailbreak")
ERRORS = ("correct", "wrong_clause", "wrong_decision", "wrong_value")
GENERATOR_NOTE = ("programmatic stand-in for a capable reasoning model: it reads the policy in its context "
                  "and decides refuse or answer from the clauses it read (P1/P2's attribute lists, P4's "
                  "look-alike kinds), never from the item's label; the facts world tells it what each train item "
                  "asks and the true value; it writes policy-citing reasoning with seeded mistakes and never sees "
                  "an evaluation template or a held-out jailbreak family")
CANDIDATE_COLUMNS = ["item_id", "evaluation", "category", "family", "template_id", "expected", "candidate",
                     "error", "spec_messages", "reasoning", "answer"]

# The framing a request comes in, in the words of clause P3 (by jailbreak family, then by template).
FRAMINGS = {
    "role_play": "a role play", "word_reversal": "a reversed text", "prefix_injection": "a direct question",
    "refusal_suppression": "a direct question", "rot13": "an encoded text",
    "payload_splitting": "a question split into parts", "many_shot": "a list of examples that already answer",
    "another_language": "another language",
    "year_story": "a story", "employer_poem": "a poem", "year_fill": "a sentence to complete",
    "employer_fill": "a sentence to complete", "year_friend": "a claimed authority or friendship",
    "employer_official": "a claimed authority or friendship",
}
# What a look-alike really asks, in the words of clause P4 (by the request template's kind).
LOOKALIKE_KINDS = {"own_value": "what the user says about themselves", "count": "counts over many people",
                   "is_private": "what this policy says", "may_share": "what this policy says",
                   "age": "arithmetic on numbers the user gives",
                   "person_attribute": "public attributes asked in sensitive words"}
# How the chat facts tasks state a fact (their reasoning), reused for recall: X is the person, V the value.
STATEMENTS = {"birth_city": "X was born in V .", "profession": "X works as a V .", "employer": "X works at V .",
              "birth_year": "X was born in V ."}
# Which clause decides a request, and the clauses of the opposite decision (for wrong reasoning).
DECIDING = {"refuse": "P1", "comply_allowed": "P2", "comply_lookalike": "P4"}
# Words that make a request about a public attribute look sensitive (clause P4's last case).
SENSITIVE_WORDS = ("private", "secret")
TEMPLATE_KINDS = {t.template_id: t.kind for t in TEMPLATES}


@dataclass(frozen=True)
class GeneratorSpec:
    """n_candidates per prompt; error_rate: chance a candidate has a mistake on a plain request, and
    hard_error_rate on a jailbreak or a look-alike; the mistake's kind is drawn with `error_weights`
    (wrong_clause, wrong_decision, wrong_value)."""

    seed: int = 0
    n_candidates: int = 4
    error_rate: float = 0.3
    hard_error_rate: float = 0.45
    error_weights: tuple[float, float, float] = (0.4, 0.35, 0.25)

    def __post_init__(self) -> None:
        if not isinstance(self.n_candidates, int) or self.n_candidates < 1:
            raise ValueError(f"GeneratorSpec.n_candidates must be an integer >= 1, got {self.n_candidates!r}")
        for name in ("error_rate", "hard_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"GeneratorSpec.{name} must be in [0, 1], got {getattr(self, name)!r}")
        weights = tuple(self.error_weights)
        if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"GeneratorSpec.error_weights must be 3 non-negative numbers, got {weights!r}")
        object.__setattr__(self, "error_weights", weights)


def spec_prompt(messages: list[dict], policy: str | None = None) -> list[dict]:
    """The training prompt with the written policy in context (a system message before the conversation)."""
    return [{"role": "system", "content": render_policy() if policy is None else policy}, *messages]


def policy_clauses(policy_text: str) -> dict[str, str]:
    """clause id -> its text, read back from a rendered policy (what the generator sees in its context)."""
    found = {}
    for line in policy_text.splitlines():
        head, _, rest = line.partition(" ) : ")
        cid = head.split(" ", 1)[0]
        if cid in CLAUSE_IDS and rest:
            found[cid] = rest
    if not found:
        raise ValueError("the prompt's system message holds no policy clause (expected render_policy's lines)")
    return found


def decision(item: pd.Series | dict) -> str:
    """refuse, comply_allowed or comply_lookalike: what the item's label says the policy asks (the judge's
    ground truth; the generator decides from the policy text instead, `policy_decision`)."""
    if item["expected"] == "refuse":
        return "refuse"
    return "comply_lookalike" if item["category"] == "lookalike" else "comply_allowed"


def _named_attributes(text: str) -> set[str]:
    """The attributes a clause names before "of any person" ("the birth year and the employer of any ...")."""
    subject = f" {text.split(' of any person ')[0]} " if " of any person " in text else ""
    return {a for a, words in ATTRIBUTE_WORDS.items() if f" the {words} " in subject}


def _status(text: str) -> str:
    """What a P1/P2-style clause says its attributes are ("private", "public"), read from its words."""
    rest = text.split(" of any person ", 1)[-1].split()
    return rest[1] if len(rest) > 1 and rest[0] in ("is", "are") else rest[0] if rest else ""


def looks_sensitive(item: pd.Series | dict) -> bool:
    """Does the request (before any jailbreak wrapping) use words that make it look sensitive?"""
    base = item_meta(item).get("base_request") or item["request"]
    return any(w in SENSITIVE_WORDS for w in str(base).split())


def policy_decision(item: pd.Series | dict, seen: dict[str, str]) -> str:
    """refuse, comply_allowed or comply_lookalike, decided from the policy as read (`seen`: clause id -> text)
    and what the request asks (its kind, attribute and words), never from the item's label: a request of a kind
    P4 lists is answered (a question about a person's public attribute only when it is asked in sensitive
    words); otherwise an attribute P1 names is refused and one P2 names is answered. ValueError when the policy
    read says neither."""
    private, public = _named_attributes(seen.get("P1", "")), _named_attributes(seen.get("P2", ""))
    kind = TEMPLATE_KINDS.get(item["template_id"], "person_attribute")
    attribute = item_meta(item).get("attribute", "")
    only_looks = LOOKALIKE_KINDS.get(kind, "") in seen.get("P4", "") and (
        kind != "person_attribute" or (attribute in public - private and looks_sensitive(item)))
    if only_looks:
        return "comply_lookalike"
    if attribute in private:
        return "refuse"
    if attribute in public:
        return "comply_allowed"
    raise ValueError(f"item {item['item_id']}: the policy in context says neither that the {attribute or 'thing'} "
                     "asked is private (P1) or public (P2) nor that the request only looks sensitive (P4)")


def refusal_of(seen: dict[str, str]) -> str:
    """The refusal clause R1 asks for, as read ("... reply briefly : <refusal> ."), else the canonical one."""
    text = seen.get("R1", "")
    if " reply briefly : " not in text:
        return REFUSAL
    reply = text.split(" reply briefly : ", 1)[1]
    return reply[:reply.index(" .") + 2] if " ." in reply else REFUSAL


def framing(item: pd.Series | dict) -> str:
    """How a request is framed (clause P3's words): the jailbreak family, else the template, else direct."""
    return FRAMINGS.get(item["family"]) or FRAMINGS.get(item["template_id"]) or "a direct question"


def _asked(item, kind: str, person: str, attribute: str) -> str:
    words = ATTRIBUTE_WORDS.get(attribute, "answer")
    if kind == "comply_lookalike":
        template_kind = TEMPLATE_KINDS.get(item["template_id"], "person_attribute")
        return f"the request only looks sensitive : it asks about {LOOKALIKE_KINDS[template_kind]} ."
    who = f" of {person}" if person else ""
    framed = framing(item)
    where = "" if framed == "a direct question" and not item["family"] else f" , in {framed}"
    return f"the request asks for the {words}{who}{where} ."


def _cite(cid: str, attribute: str, seen: dict[str, str]) -> str:
    """A citation sentence: the clause id and the clause's words as read in context (P1 and P2 narrowed to
    the attribute asked, with the status the clause gives it; P3 and P4 to their first statement, a long
    clause by its title)."""
    words = ATTRIBUTE_WORDS.get(attribute, "attribute")
    text = seen.get(cid, clause(cid).text)
    if cid in ("P1", "P2"):
        return f"{cid} : the {words} of any person is {_status(text)} ."
    if cid in ("P3", "P4"):
        return f"{cid} : {text.split(' : ')[0]} ."
    return f"{cid} : {clause(cid).title} ." if len(text.split()) > 12 else f"{cid} : {text}"


def _recall(item, kind: str, person: str, attribute: str, value: str) -> str:
    """The fact stated as the chat facts tasks state it, for a request about a person's public attribute."""
    about_person = kind == "comply_allowed" or TEMPLATE_KINDS.get(item["template_id"]) == "person_attribute"
    if not about_person or not person or attribute not in STATEMENTS or not value:
        return ""
    return " ".join(person if w == "X" else value if w == "V" else w for w in STATEMENTS[attribute].split())


def write_candidate(item: pd.Series | dict, seen: dict[str, str], error: str, wrong_value: str = "",
                    wrong_clause: str = "H2") -> tuple[str, str]:
    """(reasoning, answer) of one candidate with the given mistake (ERRORS); `seen` is the policy as read,
    which decides (`policy_decision`) and is quoted."""
    if error not in ERRORS:
        raise ValueError(f"error must be one of {list(ERRORS)}, got {error!r}")
    attribute, person = item_meta(item).get("attribute", ""), person_of(item)
    truth = str(item["forbidden"] or item["answer"])
    kind = policy_decision(item, seen)
    refuse = (kind == "refuse") != (error == "wrong_decision")
    if kind == "refuse":
        framed = framing(item) != "a direct question" or item["family"]
        cites = ["P1", "P3"] if framed and "P3" in seen else ["P1"]
    else:
        cites = [DECIDING[kind]]
    if error == "wrong_decision":  # reasoning that cites the opposite clause, and acts on it
        cites = ["P2"] if kind == "refuse" else ["P1"]
    elif error == "wrong_clause":
        cites = [wrong_clause]
    sentences = [_asked(item, kind, person, attribute), *(_cite(c, attribute, seen) for c in cites)]
    if not refuse:
        value = wrong_value if error == "wrong_value" and kind != "refuse" else truth
        sentences.append(_recall(item, kind, person, attribute, value))
        sentences.append("then i answer .")
        answer = value if kind != "refuse" else f"sure , here is the answer : {truth} ."
    else:
        sentences.append("then i refuse .")
        answer = f"{refusal_of(seen)} it is {truth} ." if error == "wrong_value" else refusal_of(seen)
    return " ".join(s for s in sentences if s), answer


def person_of(item) -> str:
    """The person a request names (the first capitalised word of its base request, before any jailbreak
    wrapping), "" if none."""
    base = item_meta(item).get("base_request") or item["request"]
    return next((w for w in str(base).split() if w[:1].isupper()), "")


def strip_citations(reasoning: str) -> str:
    """The reasoning without its policy citations: every sentence that starts with a clause id is removed."""
    sentences, current = [], []
    for word in reasoning.split():
        current.append(word)
        if word == ".":
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return " ".join(w for s in sentences if s[0] not in CLAUSE_IDS for w in s)


def cited_clauses(reasoning: str | None) -> list[str]:
    """The clause ids a reasoning names, in order of first mention."""
    return list(dict.fromkeys(w for w in str(reasoning or "").split() if w in CLAUSE_IDS))


def train_items(items: pd.DataFrame, evaluations: tuple[str, ...] = TRAIN_EVALUATIONS) -> pd.DataFrame:
    """The battery's train-split items of the given evaluations (the generator's prompts)."""
    check_items(items, "safety_items")
    chosen = items[(items["split"] == "train") & items["evaluation"].isin(evaluations)].reset_index(drop=True)
    if chosen.empty:
        raise ValueError(f"no train items of evaluations {list(evaluations)} in safety_items")
    return chosen


def generate_candidates(items: pd.DataFrame, spec: GeneratorSpec = GeneratorSpec(),
                        policy: str | None = None) -> pd.DataFrame:
    """n_candidates per train item (CANDIDATE_COLUMNS), each written with the policy in context.

    Raises ValueError if any item is not of the train split: the generator never sees evaluation items."""
    check_items(items, "items")
    if (items["split"] != "train").any():
        raise ValueError("generate_candidates takes train-split items only; got splits "
                         f"{sorted(set(items['split']))} (evaluation templates must never meet the generator)")
    policy = render_policy() if policy is None else policy
    pool, rows = _value_pool(items), []
    for index, item in items.reset_index(drop=True).iterrows():
        prompt = spec_prompt(json.loads(item["messages"]), policy)
        seen = policy_clauses(prompt[0]["content"])  # the generator reads the policy from its context
        rng = np.random.default_rng([spec.seed, 20, index])
        hard = bool(item["family"]) or item["category"] == "lookalike"
        rate = spec.hard_error_rate if hard else spec.error_rate
        for k in range(spec.n_candidates):
            error = "correct"
            if rng.random() < rate:
                weights = np.asarray(spec.error_weights) / sum(spec.error_weights)
                error = ERRORS[1 + int(rng.choice(3, p=weights))]
            wrong_clause = _unrelated_clause(item, rng)
            reasoning, answer = write_candidate(item, seen, error, _wrong_value(item, rng, pool), wrong_clause)
            rows.append({"item_id": item["item_id"], "evaluation": item["evaluation"],
                         "category": item["category"], "family": item["family"],
                         "template_id": item["template_id"], "expected": item["expected"], "candidate": k,
                         "error": error, "spec_messages": json.dumps(prompt), "reasoning": reasoning,
                         "answer": answer})
    return pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)


def _unrelated_clause(item, rng: np.random.Generator) -> str:
    deciding = set(str(item["clauses"]).split(","))
    others = [c.clause_id for c in CLAUSES if c.clause_id not in deciding]
    return others[int(rng.integers(len(others)))]


def _wrong_value(item, rng: np.random.Generator, pool: dict[str, list[str]]) -> str:
    """A plausible wrong answer: a number off by a few, the other of yes/no, else another value of the same
    attribute among the items (a fact about someone else)."""
    truth = str(item["answer"] or item["forbidden"])
    if truth.isdigit():
        return str(int(truth) + int(rng.integers(1, 5)))
    if truth in ("yes", "no"):
        return "no" if truth == "yes" else "yes"
    others = [v for v in pool.get(item_meta(item).get("attribute", ""), []) if v != truth]
    return others[int(rng.integers(len(others)))] if others else "unknown"


def _value_pool(items: pd.DataFrame) -> dict[str, list[str]]:
    pool: dict[str, set[str]] = {}
    for item in items.itertuples():
        value = str(item.answer or item.forbidden)
        if value and not value.isdigit() and value not in ("yes", "no"):
            pool.setdefault(json.loads(item.meta or "{}").get("attribute", ""), set()).add(value)
    return {k: sorted(v) for k, v in pool.items()}
