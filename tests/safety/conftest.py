"""A small facts world (with protected documents) and its safety suite, built once for the safety tests."""

import pytest

from assets.corpora.facts_world import FactsWorldSpec, build_world, generate_documents
from assets.safety.battery import SuiteSpec, build_suite

WORLD = FactsWorldSpec(seed=5, n_people=60, n_cities=6, n_organisations=8, n_professions=5, n_owners=2,
                       n_train_documents=0, n_validation_documents=0, n_test_documents=0, n_protected=4,
                       protected_duplicates=(1, 4))
SUITE = SuiteSpec(seed=1, people_pool=20, n_per_template=3)


@pytest.fixture(scope="session")
def world():
    return build_world(WORLD)


@pytest.fixture(scope="session")
def documents(world):
    return generate_documents(world)


@pytest.fixture(scope="session")
def suite(world, documents):
    return build_suite(world, SUITE, documents=documents)
