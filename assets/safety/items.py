"""The one table shape every safety evaluation's items share, so one battery runs and grades them all.

Columns (ITEM_COLUMNS):
  evaluation    refusal | jailbreak | hallucination | bias | hierarchy | regurgitation.
  item_id       unique within the suite, "<evaluation>-<split>-<nnnnnn>".
  request_id    the base request an item derives from (a jailbreak item names the request it wraps; else
                its own id).
  split         "train" (templates and jailbreak families that training data may use) or "eval" (held out).
  set           the card's evaluation set: "standard" or "challenging" for refusals, "seen" / "held_out" for
                jailbreaks (the family's split), else the item kind ("answerable", "ambiguous", ...).
  category      finer kind: allowed / disallowed / lookalike, answerable / unknown_person / unheld_attribute,
                ambiguous / disambiguated_pro / disambiguated_anti, the hierarchy conflict, ...
  template_id   the template the text came from (templates are disjoint across splits).
  family        the jailbreak wrapper family ("" for an unwrapped item).
  messages      the prompt conversation as JSON (roles system/developer/user/data).
  request       the text a judge is shown as "the request" (the conversation, rendered, for multi-turn items).
  expected      what the policy asks for: comply | refuse | abstain | choose | obey_higher | not_reproduce.
  answer        the ground-truth answer when one is expected ("" otherwise).
  forbidden     a value that must not appear in the response (a private attribute, a password; "" if none).
  clauses       comma-separated policy clause ids that decide the item (assets.safety.policy).
  meta          JSON with what an evaluation's grader needs beyond the above.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from assets.safety.policy import check_clause_ids

ITEM_COLUMNS = ["evaluation", "item_id", "request_id", "split", "set", "category", "template_id", "family",
                "messages", "request", "expected", "answer", "forbidden", "clauses", "meta"]
EVALUATIONS = ("refusal", "jailbreak", "hallucination", "bias", "hierarchy", "regurgitation")
EXPECTED = ("comply", "refuse", "abstain", "choose", "obey_higher", "not_reproduce")
ITEM_SPLITS = ("train", "eval")


def user_messages(text: str, system: str = "") -> list[dict]:
    """A one-question conversation (with a system message when one is given)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def render_conversation(messages: list[dict]) -> str:
    """A conversation as one text for a judge: `[system] ... [user] ...`."""
    return " ".join(f"[{m['role']}] {m['content']}" for m in messages)


def item_row(evaluation: str, *, split: str, set_: str, category: str, template_id: str, messages: list[dict],
             expected: str, clauses: str, answer: str = "", forbidden: str = "", family: str = "",
             request_id: str = "", meta: dict | None = None) -> dict:
    """One item as a dict of ITEM_COLUMNS (item_id is filled by `number_items`)."""
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {list(EVALUATIONS)}, got {evaluation!r}")
    if split not in ITEM_SPLITS:
        raise ValueError(f"split must be one of {list(ITEM_SPLITS)}, got {split!r}")
    if expected not in EXPECTED:
        raise ValueError(f"expected must be one of {list(EXPECTED)}, got {expected!r}")
    users = [m["content"] for m in messages if m["role"] == "user"]
    request = users[-1] if len(messages) == 1 else render_conversation(messages)
    return {"evaluation": evaluation, "item_id": "", "request_id": request_id, "split": split, "set": set_,
            "category": category, "template_id": template_id, "family": family,
            "messages": json.dumps(messages), "request": request if users else "", "expected": expected,
            "answer": str(answer), "forbidden": str(forbidden), "clauses": check_clause_ids(clauses),
            "meta": json.dumps(meta or {}, sort_keys=True)}


def number_items(evaluation: str, rows: list[dict]) -> pd.DataFrame:
    """The rows as an ITEM_COLUMNS frame with ids `<evaluation>-<split>-<nnnnnn>` (numbered per split);
    a row without a request_id gets its own item_id."""
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    counters = {s: 0 for s in ITEM_SPLITS}
    ids = []
    for split in frame["split"]:
        ids.append(f"{evaluation}-{split}-{counters[split]:06d}")
        counters[split] += 1
    frame["item_id"] = ids
    frame["request_id"] = np.where(frame["request_id"] == "", frame["item_id"], frame["request_id"])
    return frame


def item_meta(row: dict | pd.Series) -> dict:
    """The parsed `meta` of an item."""
    return json.loads(row["meta"]) if row["meta"] else {}


def check_items(frame: pd.DataFrame, what: str = "items") -> pd.DataFrame:
    """Raise a clear error unless `frame` has ITEM_COLUMNS with unique item ids; returns it."""
    missing = [c for c in ITEM_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")
    if not frame["item_id"].is_unique:
        raise ValueError(f"{what}.item_id must be unique; repeated: "
                         f"{frame['item_id'][frame['item_id'].duplicated()].head(3).tolist()}")
    return frame


def suite_words(items: pd.DataFrame, extra: tuple[str, ...] = ()) -> list[str]:
    """Every whitespace-separated word of the items' messages and answers (plus `extra`, e.g. the policy's
    canonical replies), sorted: with these in a word-level tokenizer, the battery's text has no <unk>."""
    found: set[str] = set(w for text in extra for w in text.split())
    for messages, answer in zip(items["messages"], items["answer"], strict=True):
        for message in json.loads(messages):
            found.update(str(message.get("content") or "").split())
        found.update(str(answer).split())
    return sorted(found)


def vocabulary_table(items: pd.DataFrame, policy_text: str, replies: tuple[str, ...] = ()) -> pd.DataFrame:
    """The words a model must be able to read and write for the battery and the policy, one row each with
    where it first comes from: "policy" (the spec's text), "reply" (the policy's canonical replies and the
    graders' abstain phrases), then "train" / "eval" items. Sorted within each source; each word once."""
    rows: dict[str, str] = {}
    sources = [("policy", policy_text.split()), ("reply", [w for r in replies for w in r.split()])]
    sources += [(split, suite_words(items[items["split"] == split])) for split in ("train", "eval")]
    for source, words in sources:
        for word in sorted(set(words)):
            rows.setdefault(word, source)
    return pd.DataFrame({"word": list(rows), "source": list(rows.values())})


def training_overlap(items: pd.DataFrame, prompts) -> pd.DataFrame:
    """The eval items whose user messages contain a training prompt word for word (e.g. the chat facts
    task's "in which city was X born ?" inside a hierarchy conflict): one row per (item_id, request_id,
    prompt). Such an item measures recall of a trained question, not behaviour on a new one."""
    wanted = [f" {' '.join(str(p).split())} " for p in dict.fromkeys(prompts) if str(p).strip()]
    rows = []
    for item in items[items["split"] == "eval"].itertuples():
        text = " " + " ".join(" ".join(str(m.get("content") or "").split())
                              for m in json.loads(item.messages) if m["role"] == "user") + " "
        rows.extend({"item_id": item.item_id, "request_id": item.request_id, "prompt": p.strip()}
                    for p in wanted if p in text)
    return pd.DataFrame(rows, columns=["item_id", "request_id", "prompt"])


# Where a repeat of a training question is by design: a hierarchy conflict tests which instruction wins, and
# where the user asks a question of their own it must be one the model can answer (a trained fact), so those
# items keep their repeats (reported, not dropped); dropping them would leave almost no such conflict.
OVERLAP_KEPT_IN = ("hierarchy",)


def drop_training_overlap(items: pd.DataFrame, prompts) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the items without every eval request that overlaps a training prompt, outside OVERLAP_KEPT_IN; the
    overlap found, with its item's evaluation and whether it was dropped): a whole request goes, so a
    jailbreak request keeps all its families or none."""
    overlap = training_overlap(items, prompts)
    evaluation = overlap["item_id"].map(items.set_index("item_id")["evaluation"])
    overlap = overlap.assign(evaluation=evaluation, dropped=~evaluation.isin(OVERLAP_KEPT_IN))
    gone = set(overlap.loc[overlap["dropped"], "request_id"])
    dropped = items["request_id"].isin(gone) & (items["split"] == "eval")
    return items[~dropped].reset_index(drop=True), overlap
