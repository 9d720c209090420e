"""Every registered checkpoint as an MLflow model: `mlflow.pyfunc.load_model("models:/chat-sft/3")` works.

The registry's model directory is an MLflow pyfunc model (an ``MLmodel`` file with a signature, an input
example and pip requirements) whose data folder is the plain Hugging Face checkpoint (config, safetensors,
tokenizer) that the studies load with `assets.lm.model.load_checkpoint`. The loader is this file, copied into
the model as code, so loading needs only torch and transformers (not this project).

`predict` takes prompts (a DataFrame with a ``prompt`` column, or a list of strings) and returns the generated
continuations; a plain prompt is read after the tokenizer's bos token (as documents were), a tokenizer with a chat
template (the chat models) gets each prompt as a user message (one holding a chat token such as `<|system|>`
is refused: it would forge a turn) and the reply's final answer is returned. Params: ``max_new_tokens`` (16),
``temperature`` (0: greedy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_PARAMS = {"max_new_tokens": 16, "temperature": 0.0}


class CausalLMPyfunc:
    """What `mlflow.pyfunc.load_model` returns the `predict` of: generation from a local checkpoint."""

    def __init__(self, checkpoint: str | os.PathLike):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)

    def _prompt_ids(self, prompt: str) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            # the prompt is a user message rendered into one string: a chat token in it would be that token (the
            # check of assets.chat.format.validate_messages, restated: this file loads without the project)
            forged = [t for t in self.tokenizer.get_added_vocab() if t.startswith("<|") and t in prompt]
            if forged:
                raise ValueError(f"prompt holds the chat token {forged[0]!r}, which would forge a turn; remove it")
            return list(self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                                           add_generation_prompt=True, return_dict=True)["input_ids"])
        # a prompt opens a document as the model read them: after its bos token (ours add <s> themselves; a GPT-2
        # tokenizer adds nothing, and its <|endoftext|> is both bos and eos)
        ids = list(self.tokenizer(prompt)["input_ids"])
        bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        return ids if bos is None or ids[:1] == [bos] else [bos, *ids]

    def _text(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        text = text.split("<|answer|>", 1)[-1]  # a chat reply: keep the final answer only
        specials = set(self.tokenizer.all_special_tokens)  # and drop special and chat-format tokens
        return " ".join(w for w in text.split() if w not in specials and not (w.startswith("<|") and w.endswith("|>")))

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> list[str]:
        import torch

        params = {**DEFAULT_PARAMS, **(params or {})}
        if hasattr(model_input, "columns") or isinstance(model_input, dict):  # a DataFrame or {"prompt": [...]}
            model_input = model_input["prompt"]
        prompts = []
        for value in [model_input] if isinstance(model_input, str) else list(model_input):
            # MLflow turns {"prompt": [a, b]} into one row holding the list: take its items
            prompts += [value] if isinstance(value, str) else [str(v) for v in value]
        positions = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        generator = torch.Generator().manual_seed(0)
        out = []
        for prompt in prompts:
            ids = self._prompt_ids(str(prompt))[-max(positions - int(params["max_new_tokens"]), 1):]
            x = torch.tensor([ids])
            with torch.no_grad():
                for _ in range(int(params["max_new_tokens"])):
                    logits = self.model(x[:, -positions:]).logits[0, -1]
                    if float(params["temperature"]) > 0:
                        probs = torch.softmax(logits / float(params["temperature"]), -1)
                        nxt = int(torch.multinomial(probs, 1, generator=generator))
                    else:
                        nxt = int(logits.argmax())
                    x = torch.cat([x, torch.tensor([[nxt]])], 1)
                    if nxt == self.tokenizer.eos_token_id or x.shape[1] >= positions:
                        break
            out.append(self._text(x[0, len(ids):].tolist()))
        return out


def _load_pyfunc(data_path: str) -> CausalLMPyfunc:
    """MLflow's loader-module entry point: `data_path` is the model's data folder (the checkpoint)."""
    return CausalLMPyfunc(data_path)


def save_pyfunc_model(checkpoint_dir: str | os.PathLike, path: str | os.PathLike, *,
                      example_prompt: str = "") -> Path:
    """Write the MLflow pyfunc model at `path` (a new folder) around a copy of `checkpoint_dir`: MLmodel with
    signature (prompt: string -> string; params max_new_tokens, temperature), an input example, pip
    requirements pinned to the torch and transformers in use, and this file as the loader code."""
    import mlflow
    import pandas as pd
    import torch
    import transformers
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "prompt")]), outputs=Schema([ColSpec("string")]),
                               params=ParamSchema([ParamSpec("max_new_tokens", "long", 16),
                                                   ParamSpec("temperature", "double", 0.0)]))
    mlflow.pyfunc.save_model(
        path=str(path), loader_module=Path(__file__).stem, data_path=str(checkpoint_dir), code_paths=[__file__],
        signature=signature, input_example=pd.DataFrame({"prompt": [example_prompt or "hello"]}),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}",
                          "pandas"])
    return Path(path)


def checkpoint_of(directory: str | os.PathLike) -> Path:
    """The Hugging Face checkpoint inside an MLflow pyfunc model directory (its data folder); a plain
    checkpoint directory as given."""
    root = Path(directory)
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        return root
    import yaml

    data = (yaml.safe_load(mlmodel.read_text()).get("flavors", {}).get("python_function", {}) or {}).get("data")
    return root / data if data else root
