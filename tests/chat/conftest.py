"""Shared tiny pieces for the chat tests: a small arithmetic world, its word-level tokenizer with the chat
format installed, and a tiny Llama built for that tokenizer."""

import pytest

from assets.chat.format import install_chat_format
from assets.chat.tasks import ArithmeticSpec, arithmetic_problems, task_words
from assets.corpora.tokenization import train_word_level_tokenizer
from assets.lm.model import ModelSize, build_model

TINY = ModelSize("chat-tiny", d_model=32, n_layers=1, n_heads=4, d_ff=64, context_length=96)


def make_tokenizer(*frames, extra=()):
    return install_chat_format(train_word_level_tokenizer([*task_words(*frames), *extra]))


def make_model(tokenizer, seed=0, size=TINY, **kwargs):
    return build_model(
        size,
        len(tokenizer),
        seed,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|end|>"),
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


@pytest.fixture(scope="session")
def arithmetic():
    return arithmetic_problems(
        ArithmeticSpec(seed=0, chain_ops=(1, 3), sum_digits=(1, 2), n_train=200, n_validation=40, n_test=40)
    )


@pytest.fixture(scope="session")
def tokenizer(arithmetic):
    # Every number 0..99 is a word, so any answer a model writes is tokenisable.
    return make_tokenizer(arithmetic, extra=[str(i) for i in range(100)])


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny models on a shared 2-core machine: two threads spin against each other and the other workers.
    from assets.lm.threads import torch_threads

    with torch_threads(1):
        yield
