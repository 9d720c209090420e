"""Reasoning budgets: honoured exactly, the answer forced, effort levels, majority vote, compute counted."""

import pytest

from assets.chat.budget import (
    EFFORT_BUDGETS,
    answer_with_budget,
    generate_with_budget,
    majority_vote,
    reasoning_budget,
)
from assets.chat.format import END_REASONING, chat_token_ids
from assets.chat.tasks import prompt_messages
from assets.lm.model import count_parameters
from tests.chat.conftest import make_model


@pytest.fixture(scope="module")
def model(tokenizer):
    # A wide init spreads the logits, so samples differ and the model sometimes closes its reasoning itself.
    return make_model(tokenizer, seed=1, init_std=0.5)


@pytest.fixture(scope="module")
def conversations(arithmetic):
    return [prompt_messages(r) for _, r in arithmetic.head(6).iterrows()]


@pytest.mark.parametrize("budget", [0, 1, 5])
def test_budget_is_never_exceeded_and_the_answer_is_forced(model, tokenizer, conversations, budget):
    ids = chat_token_ids(tokenizer)
    samples = generate_with_budget(model, tokenizer, conversations, budget, k=4, max_answer_tokens=3, seed=3)
    assert len(samples) == 24 and (samples["budget"] == budget).all()
    assert (samples["reasoning_tokens"] <= budget).all()
    for _, s in samples.iterrows():
        completion = s["completion_ids"]
        close = completion.index(ids.end_reasoning)
        assert close == s["reasoning_tokens"] <= budget
        assert completion[close + 1] == ids.answer and completion[-1] == ids.end  # answer part, then the end
        assert len(completion) - close - 3 <= 3  # max_answer_tokens
        assert s["forced"][close + 1] and s["forced"][close] == s["budget_exhausted"]
        assert s["answer"] is not None and s["finished"]
        assert s["generated_tokens"] == len(completion) and len(s["forced"]) == len(completion)
    if budget == 5:
        # An untrained model rarely closes by itself: most closes are forced at exactly the budget.
        exhausted = samples[samples["budget_exhausted"]]
        assert len(exhausted) >= 12 and (exhausted["reasoning_tokens"] == 5).all()


def test_model_written_close_is_not_counted_as_forced(model, tokenizer, conversations):
    samples = generate_with_budget(model, tokenizer, conversations, 40, k=8, max_answer_tokens=2, seed=0)
    spontaneous = samples[~samples["budget_exhausted"]]
    assert len(spontaneous) > 0 and (spontaneous["reasoning_tokens"] < 40).all()
    assert all(not s["forced"][s["reasoning_tokens"]] for _, s in spontaneous.iterrows())


def test_compute_is_counted_per_answer(model, tokenizer, conversations):
    answers, samples = answer_with_budget(model, tokenizer, conversations, "low", k=3, max_answer_tokens=2)
    n = count_parameters(model, non_embedding=True)
    processed = samples["prompt_tokens"] + samples["generated_tokens"] - 1
    assert (samples["flops"] == 2.0 * n * processed).all()
    assert len(answers) == len(conversations) and (answers["k"] == 3).all()
    first = samples[samples["prompt_index"] == 0]
    assert answers["flops"].iloc[0] == pytest.approx(first["flops"].sum())
    assert answers["reasoning_tokens"].iloc[0] == first["reasoning_tokens"].sum()
    assert answers["answer"].iloc[0] == majority_vote(first["answer"].tolist())[0]


def test_greedy_is_batch_independent(model, tokenizer, conversations):
    together = generate_with_budget(model, tokenizer, conversations, 4, temperature=0.0, batch_size=6)
    alone = generate_with_budget(model, tokenizer, conversations[2:3], 4, temperature=0.0, batch_size=1)
    assert together["completion_ids"].iloc[2] == alone["completion_ids"].iloc[0]


def test_effort_levels_and_a_budget_beyond_the_context(model, tokenizer, conversations):
    assert [reasoning_budget(e) for e in ("low", "medium", "high")] == sorted(EFFORT_BUDGETS.values())
    assert reasoning_budget(7) == 7
    with pytest.raises(ValueError, match="effort must be one of"):
        reasoning_budget("extreme")
    with pytest.raises(ValueError, match="budget must be an int >= 0"):
        reasoning_budget(-1)
    # "high" (256) does not fit a 96-position model: the budget is lowered to fit, and says so.
    samples = generate_with_budget(model, tokenizer, conversations[:1], "high", max_answer_tokens=2)
    assert samples["budget"].iloc[0] < 256
    assert samples["prompt_tokens"].iloc[0] + samples["generated_tokens"].iloc[0] <= 96
    assert END_REASONING not in samples["reasoning"].iloc[0]


def test_per_conversation_budgets_are_each_lowered_only_to_what_their_prompt_fits(model, tokenizer, conversations):
    from assets.chat.format import prompt_ids

    lengths = [len(prompt_ids(tokenizer, c)) for c in conversations]
    room = 2 + 2 + 1  # close, answer marker, 2 answer tokens, end
    asked = [50, 3, 0, 50, 7, 50]  # 50 fits none of them in 96 positions: each is lowered to its own room
    samples = generate_with_budget(model, tokenizer, conversations, asked, temperature=0.0, max_answer_tokens=2,
                                   batch_size=6)
    fits = [min(b, 96 - n - room) for b, n in zip(asked, lengths, strict=True)]
    assert samples["budget"].tolist() == fits and len(set(fits)) > 3
    assert (samples["reasoning_tokens"] <= samples["budget"]).all()
    assert ((samples["prompt_tokens"] + samples["generated_tokens"]) <= 96).all()
    # a budget per conversation in one batch generates what each budget alone generates (greedy)
    alone = generate_with_budget(model, tokenizer, conversations[1:2], 3, temperature=0.0, max_answer_tokens=2)
    assert samples["completion_ids"].iloc[1] == alone["completion_ids"].iloc[0]
    with pytest.raises(ValueError, match="budgets for"):
        generate_with_budget(model, tokenizer, conversations, [1, 2])


def test_majority_vote():
    assert majority_vote(["7", "8", " 7 ", "8", "7"]) == ("7", 3)
    assert majority_vote(["Yes", "no", "yes"]) == ("Yes", 2)  # case aside, first form kept
    assert majority_vote(["b", "a", "a", "b"]) == ("b", 2)  # a tie goes to the first seen
    assert majority_vote([None, "", "  "]) == (None, 0)
    assert majority_vote(["9 3 6", "936", "1"], key=lambda a: "".join(a.split())) == ("9 3 6", 2)
