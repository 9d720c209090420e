"""A real-text corpus every machine has: the running Python's standard-library sources.

Documents are .py files under the stdlib directory, minus third-party packages, test suites, generated
tables and bulky non-core folders. Which files are kept and which split each lands in depend only on the
file's relative path, so the corpus is reproducible across machines with the same Python, and
`corpus_hash` says exactly which bytes were used.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from pathlib import Path

import pandas as pd

DOCUMENT_COLUMNS = ["doc_id", "split", "text", "n_bytes", "sha256"]

# Folders skipped wherever they appear: third-party code, test suites, IDE/demo code, data-like modules.
EXCLUDED_DIRS = frozenset({
    "site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test", "idlelib", "lib2to3",
    "turtledemo", "ensurepip", "pydoc_data", "encodings", "lib-dynload", "__phello__",
})
# Generated build data rather than code.
EXCLUDED_FILE_PREFIXES = ("_sysconfigdata",)


class CodeCorpusError(ValueError):
    """The code corpus could not be built as asked."""


def _unit_interval(salt: str, path: str) -> float:
    """A stable pseudo-random number in [0, 1) for a path (the same on every machine and run)."""
    digest = hashlib.sha256(f"{salt}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(path: str, validation_fraction: float) -> str:
    """"validation" for a stable `validation_fraction` of paths, else "train"."""
    return "validation" if _unit_interval("split", path) < validation_fraction else "train"


def _python_files(root: Path) -> list[str]:
    """Sorted relative POSIX paths of the kept .py files; excluded folders are pruned, not walked
    (site-packages alone can hold far more files than the library)."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in EXCLUDED_DIRS and not d.startswith("config-")]
        for name in files:
            if name.endswith(".py") and not name.startswith(EXCLUDED_FILE_PREFIXES):
                found.append((Path(directory) / name).relative_to(root).as_posix())
    return sorted(found)


def corpus_hash_of(documents: pd.DataFrame) -> str:
    """sha256 over the sorted (path, file sha256) pairs: names the exact corpus."""
    hasher = hashlib.sha256()
    for path, digest in sorted(zip(documents["doc_id"], documents["sha256"], strict=True)):
        hasher.update(f"{path}\0{digest}\n".encode())
    return hasher.hexdigest()


def build_code_corpus(max_files: int | None = None, max_bytes: int | None = None,
                      validation_fraction: float = 0.1,
                      stdlib_dir: str | None = None) -> tuple[pd.DataFrame, str]:
    """Build the standard-library code corpus.

    Returns (documents, corpus_hash). documents has columns doc_id (relative POSIX path), split
    ("train"/"validation", by a stable hash of the path), text, n_bytes, sha256, sorted by doc_id;
    `documents.attrs` records n_undecodable and n_empty (files skipped) and the source directory.

    With limits, files are taken in a fixed pseudo-random order of their paths (so a small corpus is a
    spread sample of the library, not its alphabetical start) until `max_files` files or `max_bytes`
    bytes; the first file that would pass `max_bytes` ends the selection.
    """
    if max_files is not None and (not isinstance(max_files, int) or max_files < 1):
        raise CodeCorpusError(f"max_files must be a positive integer or None, got {max_files!r}")
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
        raise CodeCorpusError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
    if not isinstance(validation_fraction, int | float) or not 0.0 <= validation_fraction < 1.0:
        raise CodeCorpusError(f"validation_fraction must be a number in [0, 1), got {validation_fraction!r}")
    root = Path(stdlib_dir if stdlib_dir is not None else sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise CodeCorpusError(f"stdlib_dir {str(root)!r} is not a directory")

    candidates = _python_files(root)
    selection_order = sorted(candidates, key=lambda path: _unit_interval("select", path))

    rows = []
    n_undecodable = n_empty = total_bytes = 0
    for path in selection_order:
        if max_files is not None and len(rows) >= max_files:
            break
        raw = (root / path).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            n_undecodable += 1
            continue
        if not text.strip():
            n_empty += 1  # empty __init__.py files teach nothing
            continue
        if max_bytes is not None and total_bytes + len(raw) > max_bytes:
            break
        total_bytes += len(raw)
        rows.append({"doc_id": path, "split": split_of(path, validation_fraction), "text": text,
                     "n_bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
    if not rows:
        raise CodeCorpusError(f"no usable .py files under {str(root)!r} within the limits "
                              f"(max_files={max_files}, max_bytes={max_bytes})")
    documents = pd.DataFrame(rows, columns=DOCUMENT_COLUMNS).sort_values("doc_id", ignore_index=True)
    documents["n_bytes"] = documents["n_bytes"].astype("int64")
    documents.attrs.update({"n_undecodable": n_undecodable, "n_empty": n_empty, "stdlib_dir": str(root)})
    return documents, corpus_hash_of(documents)
