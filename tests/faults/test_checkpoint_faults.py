"""A garbage checkpoint directory fails with one error that names the directory (issue 15, 7)."""

import pytest

from assets.lm.model import load_checkpoint


@pytest.mark.parametrize("files", [
    {"config.json": "{not json"},
    {"config.json": '{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, '
                    '"num_hidden_layers": 1, "intermediate_size": 16}', "model.safetensors": "garbage bytes"},
    {"config.json": '{"model_type": "no-such-architecture"}'},
])
def test_garbage_checkpoint_names_its_directory(tmp_path, files):
    folder = tmp_path / "my-checkpoint"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises((ValueError, OSError)) as info:
        load_checkpoint(folder)
    assert str(folder) in str(info.value)
