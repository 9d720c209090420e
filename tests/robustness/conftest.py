"""Small task worlds for the robustness tests: arithmetic, facts questions over a tiny facts world, and the
instruction tasks built on them; a word-level chat tokenizer over all of it and a tiny Llama for it."""

import pytest

from assets.chat.tasks import (
    ArithmeticSpec,
    FactsQuestionSpec,
    InstructionSpec,
    arithmetic_problems,
    facts_questions,
    instruction_problems,
)
from assets.corpora.facts_world import FactsWorldSpec, build_world
from tests.chat.conftest import make_model, make_tokenizer

WORLD = FactsWorldSpec(seed=3, n_people=30, n_cities=5, n_organisations=6, n_professions=4, n_owners=1,
                       n_train_documents=0, n_validation_documents=0, n_test_documents=0, n_protected=0)


@pytest.fixture(scope="session")
def frames():
    arithmetic = arithmetic_problems(ArithmeticSpec(seed=0, chain_ops=(1, 3), sum_digits=(1, 2), n_train=60,
                                                    n_validation=10, n_test=30))
    facts = facts_questions(build_world(WORLD), FactsQuestionSpec(seed=0, people_pool=20, n_train=60,
                                                                  n_validation=10, n_test=30))
    return {"arithmetic": arithmetic, "facts": facts, "ambiguous": instruction_problems(facts, InstructionSpec())}


@pytest.fixture(scope="session")
def tokenizer(frames):
    from assets.robustness.attacks import END_WORD, INJECTION, THINK_LESS
    from assets.robustness.items import AMBIGUOUS_SYSTEM, UNAMBIGUOUS_SYSTEM

    extra = [str(i) for i in range(100)] + " ".join([*INJECTION, *END_WORD, *THINK_LESS, UNAMBIGUOUS_SYSTEM,
                                                     AMBIGUOUS_SYSTEM]).split()
    return make_tokenizer(*frames.values(), extra=extra)


@pytest.fixture(scope="session")
def model(tokenizer):
    from assets.lm.model import ModelSize

    return make_model(tokenizer, seed=2, size=ModelSize("robust-tiny", d_model=32, n_layers=1, n_heads=4, d_ff=64,
                                                        context_length=160))


@pytest.fixture(autouse=True)
def one_torch_thread():
    from assets.lm.threads import torch_threads

    with torch_threads(1):
        yield
