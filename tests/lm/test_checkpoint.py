"""Checkpoints: save_pretrained round trips, offline loading with a tokenizer, clear errors, no half-writes."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from assets.lm.model import ModelSize, build_model, load_checkpoint, save_checkpoint

SIZE = ModelSize("tiny", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=16)
WORDS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "alice", "was", "born", "in", "paris", "rome", "."]


def word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]"
    )


@pytest.mark.parametrize("tie", [True, False])
def test_save_then_load_gives_identical_logits(tmp_path, tie):
    model = build_model(SIZE, len(WORDS), seed=0, tie_embeddings=tie).eval()
    with torch.no_grad():  # perturb so we are not just comparing two fresh initialisations
        model.model.norm.weight.mul_(1.5)
    ids = torch.randint(0, len(WORDS), (3, 10), generator=torch.Generator().manual_seed(0))
    save_checkpoint(model, None, tmp_path / "ckpt")
    loaded, tokenizer = load_checkpoint(tmp_path / "ckpt")
    assert tokenizer is None
    assert not loaded.training
    assert list((tmp_path / "ckpt").glob("*.safetensors"))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert (loaded.lm_head.weight is loaded.model.embed_tokens.weight) == tie


def test_load_checkpoint_offline_with_a_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = word_tokenizer()
    model = build_model(SIZE, len(WORDS), seed=1, bos_token_id=2, eos_token_id=3, pad_token_id=0)
    save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    loaded, loaded_tok = load_checkpoint(str(tmp_path / "ckpt"))
    text = "alice was born in rome ."
    assert loaded_tok(text).input_ids == tokenizer(text).input_ids == [4, 5, 6, 7, 9, 10]
    assert loaded_tok.eos_token == "[EOS]" and loaded.config.eos_token_id == 3
    ids = torch.tensor([loaded_tok(text).input_ids])
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, loaded(ids).logits)


def test_load_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_checkpoint(tmp_path / "empty")


def test_save_refuses_to_clobber_and_never_half_writes(tmp_path):
    model = build_model(SIZE, len(WORDS), seed=0)
    save_checkpoint(model, None, tmp_path / "ckpt")
    with pytest.raises(FileExistsError, match="overwrite"):
        save_checkpoint(model, None, tmp_path / "ckpt")

    class BrokenTokenizer:
        def save_pretrained(self, directory):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, BrokenTokenizer(), tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no target, no staging leftovers
    save_checkpoint(model, None, tmp_path / "ckpt", overwrite=True)
    assert load_checkpoint(tmp_path / "ckpt")[0].config.vocab_size == len(WORDS)
