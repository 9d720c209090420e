"""Tokenizers laid out as other projects' checkpoints bring them, built locally with `tokenizers` (nothing
downloaded): a byte-level BPE whose only special token is GPT-2's <|endoftext|>, with the bos/eos a GPT-2,
Pythia or Llama-3 tokenizer_config.json names."""

from __future__ import annotations

from collections.abc import Sequence

ENDOFTEXT = "<|endoftext|>"


def byte_level_bpe(texts: Sequence[str], vocab_size: int, specials: Sequence[str] = (ENDOFTEXT,), *,
                   bos_token: str | None = ENDOFTEXT, eos_token: str | None = ENDOFTEXT):
    """A transformers fast tokenizer: byte-level BPE trained on ``texts`` with ``specials`` first (ids 0..),
    no <s>/</s>, no post-processor (nothing is added when encoding, as GPT-2's), and these bos/eos tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos_token, eos_token=eos_token)
