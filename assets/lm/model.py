"""The language-model family: a Llama-style decoder built from a `ModelSize`, and checkpoint I/O.

Every study trains the same architecture (pre-norm RMSNorm blocks, rotary positions, SwiGLU MLP, SDPA
attention) at different sizes, so a model is fully described by a `ModelSize` plus a vocabulary size and a
seed. Checkpoints are plain Hugging Face `save_pretrained` directories (safetensors), so any local causal-LM
checkpoint, ours or a downloaded one, loads through `load_checkpoint`.

Torch and transformers are imported inside functions: Dagster code locations import this module cheaply.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from transformers import LlamaForCausalLM, PreTrainedModel


@dataclass(frozen=True)
class ModelSize:
    """Shape of a decoder-only transformer.

    name: label used in tables and plots (e.g. "tiny", "14M").
    d_model: residual-stream width. n_layers: number of blocks. n_heads: query heads.
    d_ff: hidden width of the SwiGLU MLP. context_length: maximum sequence length (positions).
    n_kv_heads: key/value heads for grouped-query attention; None means n_heads (plain multi-head).
    """

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    context_length: int
    n_kv_heads: int | None = None

    def __post_init__(self) -> None:
        for field in ("d_model", "n_layers", "n_heads", "d_ff", "context_length"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelSize.{field} must be a positive int, got {value!r}")
        if self.n_kv_heads is not None and (not isinstance(self.n_kv_heads, int) or self.n_kv_heads < 1):
            raise ValueError(f"ModelSize.n_kv_heads must be None or a positive int, got {self.n_kv_heads!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelSize.d_model ({self.d_model}) must be divisible by ModelSize.n_heads ({self.n_heads})"
            )
        if self.head_dim % 2:
            # Rotary embeddings rotate pairs of dimensions.
            raise ValueError(f"ModelSize head dimension d_model/n_heads must be even, got {self.head_dim}")
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"ModelSize.n_heads ({self.n_heads}) must be divisible by ModelSize.n_kv_heads ({self.kv_heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads


def _check_token_id(name: str, value: int | None, vocab_size: int) -> None:
    if value is not None and not (0 <= value < vocab_size):
        raise ValueError(f"{name} must be in [0, vocab_size={vocab_size}), got {value}")


def build_model(
    size: ModelSize,
    vocab_size: int,
    seed: int,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    tie_embeddings: bool = True,
    init_std: float = 0.02,
    rope_theta: float = 10000.0,
) -> LlamaForCausalLM:
    """A freshly initialised `LlamaForCausalLM` of the given size, float32, on CPU, in train mode.

    Initialisation depends only on `seed` (the global torch RNG is left as it was), so two calls with the same
    arguments give bit-identical weights. `tie_embeddings` shares the input embedding with the LM head, as
    GPT-2/nanoGPT do; it saves vocab_size*d_model parameters, which matters for small models.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
    for name, value in (
        ("bos_token_id", bos_token_id),
        ("eos_token_id", eos_token_id),
        ("pad_token_id", pad_token_id),
    ):
        _check_token_id(name, value, vocab_size)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size.d_model,
        intermediate_size=size.d_ff,
        num_hidden_layers=size.n_layers,
        num_attention_heads=size.n_heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=size.context_length,
        initializer_range=init_std,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        tie_word_embeddings=tie_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        attn_implementation="sdpa",
    )
    # fork_rng: seed the initialisation without disturbing anyone else's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.train()
    return model


def count_parameters(model: torch.nn.Module, *, non_embedding: bool = False) -> int:
    """Number of distinct parameters (tied weights counted once).

    non_embedding=True leaves out the input token embedding (Kaplan et al.'s N); an untied LM head is kept
    because it is a matmul that costs compute like any other layer.
    """
    total = sum(p.numel() for p in model.parameters())
    if non_embedding:
        embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if embedding is None:
            raise ValueError("count_parameters(non_embedding=True) needs a model with get_input_embeddings()")
        total -= embedding.weight.numel()
    return total


def checkpoint_shape(config: Any) -> dict[str, Any]:
    """The shape of a Hugging Face model from its ``config`` (``model.config`` or ``AutoConfig``), in
    `ModelSize`'s words: d_model, n_layers, n_heads, d_ff, context_length, n_kv_heads, plus vocab_size (the
    embedding's rows) and model_type. Read through the standard config names (GPT-2's n_embd/n_layer/n_head/
    n_positions map onto them); a field the architecture does not state is None (GPT-2's unset n_inner is its
    4 * d_model)."""
    def read(*names: str) -> Any:
        return next((value for name in names if (value := getattr(config, name, None)) is not None), None)

    d_model = read("hidden_size", "d_model", "n_embd")
    d_ff = read("intermediate_size", "n_inner", "ffn_dim", "d_ff")
    if d_ff is None and getattr(config, "model_type", None) == "gpt2" and d_model is not None:
        d_ff = 4 * d_model
    heads = read("num_attention_heads", "n_head")
    return {"d_model": d_model, "n_layers": read("num_hidden_layers", "n_layer"), "n_heads": heads, "d_ff": d_ff,
            "context_length": read("max_position_embeddings", "n_positions", "n_ctx"),
            "n_kv_heads": read("num_key_value_heads") or heads, "vocab_size": read("vocab_size"),
            "model_type": getattr(config, "model_type", None)}


def model_flops_per_token(size: ModelSize, vocab_size: int) -> float:
    """Training FLOPs per token (forward + backward) in the PaLM/nanoGPT convention, for MFU.

    6 * N_matmul + 12 * n_layers * d_model * context_length, where N_matmul counts the weights that take part
    in matrix multiplies (attention projections, SwiGLU MLP, LM head; not the embedding lookup or norms) and
    the second term is the attention score/value products (counted for the full T x T square, as PaLM does).
    """
    d, kv_dim = size.d_model, size.kv_heads * size.head_dim
    per_layer = 2 * d * d + 2 * d * kv_dim + 3 * d * size.d_ff  # q,o + k,v + gate,up,down
    n_matmul = size.n_layers * per_layer + d * vocab_size
    return 6.0 * n_matmul + 12.0 * size.n_layers * d * size.context_length


def save_checkpoint(
    model: PreTrainedModel, tokenizer: Any | None, directory: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write `model` (and `tokenizer`, if given) with `save_pretrained` (safetensors) to `directory`.

    The checkpoint is written to a temporary sibling directory and renamed into place, so a crash never
    leaves a half-written checkpoint under `directory`. Refuses to replace a non-empty directory unless
    `overwrite=True`.
    """
    target = Path(directory)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"checkpoint directory {target} exists and is not empty (pass overwrite=True)")
    # DDP / torch.compile wrappers: save the underlying model so the checkpoint loads anywhere.
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_checkpoint(
    directory: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, Any | None]:
    """Load any local Hugging Face causal-LM checkpoint directory, offline, in eval mode.

    Returns (model, tokenizer); tokenizer is None when the directory holds no tokenizer files. `dtype` None
    keeps float32 (the v5 default would otherwise follow the checkpoint's saved dtype).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"checkpoint directory {path} has no config.json (not a save_pretrained checkpoint)"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype or torch.float32)
    except Exception as exc:  # garbage config or weights: transformers' message does not always name the folder
        raise ValueError(f"checkpoint directory {path} could not be loaded as a causal LM: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
    model.to(device).eval()
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    tokenizer = None
    if any((path / name).is_file() for name in tokenizer_files):
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ValueError(f"checkpoint directory {path}: its tokenizer files could not be loaded: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
    return model, tokenizer
