"""The user's own text as a corpus of documents.

Accepted inputs:
- a directory: every `.txt` file below it (recursively) is one document, doc_id = its relative path;
  with `owner_column`, a document's owner is the name of the top-level subfolder it sits in; hidden files and
  folders (a name starting with "."), such as Jupyter's `.ipynb_checkpoints` copies or macOS's `._` files,
  are not part of the corpus (nor of its hash): a checkpoint copy would be a duplicate on the other side of
  the split;
- a `.txt` file: documents are separated by one or more blank lines (a line of only whitespace, any Unicode
  whitespace such as a no-break space, is blank), doc_id = "<file>:<n>" (the n-th non-empty document, 1-based);
- a `.jsonl` file: one JSON object per line holding the text (and owner) field, doc_id = "<file>:<line>"; lines
  end at "\n" (a trailing "\r" is dropped), so U+2028, U+2029 and U+0085 inside a string stay in the text;
- a `.parquet` file: one row per document, doc_id = "<file>:<row>" (0-based).

.txt text has its line endings made "\n" (Windows "\r\n" and old Mac "\r" alike). Documents that are empty or
whitespace-only are dropped. Everything else that is wrong raises a `UserCorpusError` naming the file and what
was expected. `corpus_hash` names the exact bytes a corpus was read from.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

SUPPORTED = ".txt file, .jsonl file, .parquet file, or a directory of .txt files"
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")  # [^\S\n]: any Unicode whitespace but the line break itself


class UserCorpusError(ValueError):
    """The user's corpus could not be read; the message names the file and the problem."""


def read_user_corpus(path: str | Path, text_column: str = "text", owner_column: str | None = None,
                     validation_fraction: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Read a user corpus into a DataFrame with columns doc_id, split, text (and `owner` when
    `owner_column` is given). A seeded `validation_fraction` of documents (at least one when there are
    two or more and the fraction is positive, never all) gets split "validation", the rest "train": those whose
    seeded hash of their text ranks lowest (`_splits`), so a document keeps its side when others are added,
    removed or reordered."""
    if not isinstance(validation_fraction, int | float) or not 0.0 <= validation_fraction < 1.0:
        raise UserCorpusError(f"validation_fraction must be a number in [0, 1), got {validation_fraction!r}")
    path = Path(path)
    if not path.exists():
        raise UserCorpusError(f"{path}: no such file or directory; expected a {SUPPORTED}")
    if path.is_dir():
        records = _read_directory(path, owner_column)
    elif path.suffix.lower() == ".txt":
        if owner_column is not None:
            raise UserCorpusError(f"{path}: a single .txt file has no owners; use .jsonl/.parquet with an "
                                  f"owner field, or a directory with one subfolder per owner")
        records = _read_txt(path)
    elif path.suffix.lower() == ".jsonl":
        records = _read_jsonl(path, text_column, owner_column)
    elif path.suffix.lower() == ".parquet":
        records = _read_parquet(path, text_column, owner_column)
    else:
        raise UserCorpusError(f"{path}: unsupported extension {path.suffix!r}; expected a {SUPPORTED}")

    records = [r for r in records if r["text"].strip()]
    if not records:
        raise UserCorpusError(f"{path}: the corpus is empty (no non-empty documents)")
    documents = pd.DataFrame(records)
    documents.insert(1, "split", _splits(documents["text"].tolist(), validation_fraction, seed))
    columns = ["doc_id", "split", "text"] + (["owner"] if owner_column is not None else [])
    return documents[columns]


def corpus_hash(path: str | Path) -> str:
    """sha256 naming the exact corpus at ``path``: of a file's bytes; of a directory's .txt files, over the sorted
    (relative path, file sha256) pairs (as `assets.corpora.code_corpus.corpus_hash_of`)."""
    path = Path(path)
    if not path.is_dir():
        return _file_sha256(path)
    hasher = hashlib.sha256()
    for file in _corpus_files(path):
        hasher.update(f"{file.relative_to(path).as_posix()}\0{_file_sha256(file)}\n".encode())
    return hasher.hexdigest()


def _corpus_files(root: Path) -> list[Path]:
    """The .txt files below ``root``, sorted, leaving out hidden ones (any part of the path below ``root``
    starting with ".")."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".txt"
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _splits(texts: list[str], validation_fraction: float, seed: int) -> np.ndarray:
    """"validation" for the round(fraction x n) documents whose sha256 of (seed, text) ranks lowest (ties by
    position), "train" for the rest. A side depends on the text and the seed, not on where a document sits: adding
    or removing one document moves at most the one at the cut (a permutation by position moved 4 of 10
    validation documents into train when one document was appended), and copies of one text rank side by side."""
    n = len(texts)
    n_validation = round(validation_fraction * n)
    if validation_fraction > 0 and n >= 2:
        n_validation = min(max(n_validation, 1), n - 1)
    keys = [hashlib.sha256(f"{seed}\0{text}".encode()).digest() for text in texts]
    splits = np.full(n, "train", dtype=object)
    splits[sorted(range(n), key=lambda i: (keys[i], i))[:n_validation]] = "validation"
    return splits


def _decode(path: Path) -> str:
    """Strict UTF-8 (a leading byte-order mark is allowed); the error names the first bad byte's offset."""
    raw = path.read_bytes()
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = skip + error.start
        raise UserCorpusError(f"{path}: not UTF-8 text: undecodable byte 0x{raw[offset]:02x} at byte offset "
                              f"{offset}") from None


def _unix_lines(text: str) -> str:
    """``text`` with Windows (\\r\\n) and old Mac (\\r) line endings made \\n."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_txt(path: Path) -> list[dict]:
    text = _unix_lines(_decode(path))
    # framed by line breaks, so blank lines at the very start and end separate too
    paragraphs = [p.strip("\n") for p in _BLANK_LINES.split(f"\n{text}\n")]
    # numbered after the empty ones are dropped: a blank line added at the top must not rename every document
    documents = [p for p in paragraphs if p.strip()]
    return [{"doc_id": f"{path.name}:{i}", "text": p} for i, p in enumerate(documents, start=1)]


def _read_directory(root: Path, owner_column: str | None) -> list[dict]:
    files = _corpus_files(root)
    if not files:
        raise UserCorpusError(f"{root}: directory holds no .txt files outside hidden folders; expected one "
                              "document per .txt file")
    records = []
    for file in files:
        relative = file.relative_to(root)
        record = {"doc_id": relative.as_posix(), "text": _unix_lines(_decode(file))}
        if owner_column is not None:
            if len(relative.parts) < 2:
                raise UserCorpusError(f"{file}: with owner_column, every .txt file must sit in a subfolder "
                                      f"named after its owner")
            record["owner"] = relative.parts[0]
        records.append(record)
    return records


def _read_jsonl(path: Path, text_column: str, owner_column: str | None) -> list[dict]:
    records = []
    # split at "\n" only: str.splitlines would also break at U+2028/U+2029/U+0085, which JSON allows raw in a string
    for line_number, line in enumerate(_decode(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{path}: line {line_number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserCorpusError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(obj, dict):
            raise UserCorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        record = {"doc_id": f"{path.name}:{line_number}",
                  "text": _string_field(obj, text_column, where, "text_column")}
        if owner_column is not None:
            record["owner"] = _string_field(obj, owner_column, where, "owner_column")
        records.append(record)
    return records


def _string_field(obj: dict, field: str, where: str, argument: str) -> str:
    if field not in obj:
        raise UserCorpusError(f"{where}: no field {field!r} ({argument}); available fields: {sorted(obj)}")
    value = obj[field]
    if not isinstance(value, str):
        raise UserCorpusError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    try:  # JSON allows a lone surrogate ("\ud83d": an emoji cut in half), which is no text and cannot be stored
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise UserCorpusError(f"{where}: field {field!r} holds a lone surrogate {value[error.start]!r} at "
                              f"character {error.start} (an emoji or other character cut in half); not text"
                              ) from None
    return value


def _read_parquet(path: Path, text_column: str, owner_column: str | None) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a corrupt or foreign file
        raise UserCorpusError(f"{path}: not a readable Parquet file ({error})") from None
    for field, argument in ((text_column, "text_column"), (owner_column, "owner_column")):
        if field is not None and field not in table.column_names:
            raise UserCorpusError(f"{path}: no column {field!r} ({argument}); available columns: "
                                  f"{table.column_names}")
    texts = table.column(text_column).to_pylist()
    owners = table.column(owner_column).to_pylist() if owner_column is not None else None
    records = []
    for row, text in enumerate(texts):
        for field, value in ((text_column, text), (owner_column, owners[row] if owners else "")):
            if not isinstance(value, str):
                raise UserCorpusError(f"{path}: row {row}: column {field!r} must be a string, "
                                      f"got {type(value).__name__}")
        record = {"doc_id": f"{path.name}:{row}", "text": text}
        if owners is not None:
            record["owner"] = owners[row]
        records.append(record)
    return records
