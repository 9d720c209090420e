"""A small facts world, its safety suite, and the generated, judged and filtered data, built once for the
alignment tests; a word-level chat tokenizer over all of their words."""

import pytest

from assets.alignment.generator import GeneratorSpec, generate_candidates, train_items
from assets.alignment.policy_judge import judge_candidates, keep_best
from assets.alignment.sft_data import sft_table
from assets.corpora.facts_world import FactsWorldSpec, build_world, vocabulary
from assets.safety.battery import SuiteSpec, build_suite
from assets.safety.items import vocabulary_table
from assets.safety.policy import ABSTENTION, REFUSAL, UNKNOWN, render_policy

WORLD = FactsWorldSpec(seed=3, n_people=40, n_cities=5, n_organisations=6, n_professions=4, n_owners=2,
                       n_train_documents=0, n_validation_documents=0, n_test_documents=0, n_protected=0)
SUITE = SuiteSpec(seed=2, people_pool=16, n_per_template=2, evaluations=("refusal", "jailbreak"))


@pytest.fixture(scope="session")
def world():
    return build_world(WORLD)


@pytest.fixture(scope="session")
def suite(world):
    return build_suite(world, SUITE)


@pytest.fixture(scope="session")
def vocabulary_words(world, suite):
    """What the chat tokenizer knows: the world's words, the policy's, the replies', every item's, numbers."""
    words = set(vocabulary_table(suite, render_policy(), (REFUSAL, ABSTENTION, UNKNOWN))["word"])
    return words | set(vocabulary(world)) | {str(i) for i in range(100)}


@pytest.fixture(scope="session")
def judged(suite):
    items = train_items(suite)
    return keep_best(judge_candidates(generate_candidates(items, GeneratorSpec(seed=1)), items))


@pytest.fixture(scope="session")
def table(judged, suite):
    return sft_table(judged, suite)


@pytest.fixture(scope="session")
def tokenizer(vocabulary_words):
    from assets.chat.format import install_chat_format
    from assets.corpora.tokenization import train_word_level_tokenizer

    return install_chat_format(train_word_level_tokenizer(sorted(vocabulary_words)))
