"""The standard-library code corpus: reproducible, content-addressed, split by path."""

from __future__ import annotations

import hashlib

import pytest

from assets.corpora.code_corpus import CodeCorpusError, build_code_corpus, split_of


def _write(root, relative, content: bytes | str):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


@pytest.fixture
def fake_stdlib(tmp_path):
    root = tmp_path / "lib"
    for i in range(40):
        _write(root, f"pkg{i % 4}/mod_{i:02d}.py", f"def f_{i}():\n\treturn {i}  # é ✓\n")
    _write(root, "top.py", "import os\n")
    _write(root, "site-packages/thirdparty.py", "x = 1\n")
    _write(root, "test/test_top.py", "assert True\n")
    _write(root, "pkg0/tests/test_mod.py", "assert True\n")
    _write(root, "idlelib/editor.py", "x = 2\n")
    _write(root, "_sysconfigdata__linux.py", "build_time_vars = {}\n")
    _write(root, "empty/__init__.py", "")
    _write(root, "broken.py", b"x = '\xff\xfe'\n")
    _write(root, "notes.txt", "not python\n")
    return root


def test_real_stdlib_corpus_is_deterministic_with_both_splits():
    documents, digest = build_code_corpus(max_files=120, max_bytes=None, validation_fraction=0.2)
    again, digest_again = build_code_corpus(max_files=120, max_bytes=None, validation_fraction=0.2)
    assert digest == digest_again and documents.equals(again)
    assert list(documents.columns) == ["doc_id", "split", "text", "n_bytes", "sha256"]
    assert len(documents) == 120 and documents["doc_id"].is_unique
    assert documents["doc_id"].tolist() == sorted(documents["doc_id"])
    assert set(documents["split"]) == {"train", "validation"}
    assert not documents["doc_id"].str.contains(r"(?:^|/)(?:site-packages|test|tests|idlelib)/").any()
    row = documents.iloc[0]
    assert row["n_bytes"] == len(row["text"].encode("utf-8"))
    assert row["sha256"] == hashlib.sha256(row["text"].encode("utf-8")).hexdigest()


def test_exclusions_and_undecodable_files_are_skipped_and_counted(fake_stdlib):
    documents, _ = build_code_corpus(None, None, 0.25, stdlib_dir=str(fake_stdlib))
    assert len(documents) == 41
    assert "top.py" in set(documents["doc_id"])
    assert not documents["doc_id"].str.contains("site-packages|test|idlelib|_sysconfigdata|broken").any()
    assert documents.attrs["n_undecodable"] == 1 and documents.attrs["n_empty"] == 1
    assert "\t" in documents["text"].iloc[0] and "✓" in documents["text"].iloc[0]


def test_hash_changes_when_any_file_changes(fake_stdlib):
    _, before = build_code_corpus(None, None, 0.1, stdlib_dir=str(fake_stdlib))
    _write(fake_stdlib, "pkg1/mod_05.py", "def f_5():\n    return 6\n")
    _, after = build_code_corpus(None, None, 0.1, stdlib_dir=str(fake_stdlib))
    assert before != after
    _write(fake_stdlib, "pkg1/mod_05.py", "def f_5():\n\treturn 5  # é ✓\n")
    _, restored = build_code_corpus(None, None, 0.1, stdlib_dir=str(fake_stdlib))
    assert restored == before


def test_split_depends_only_on_path_not_on_limits(fake_stdlib):
    full, _ = build_code_corpus(None, None, 0.3, stdlib_dir=str(fake_stdlib))
    part, _ = build_code_corpus(10, None, 0.3, stdlib_dir=str(fake_stdlib))
    merged = part.merge(full, on="doc_id", suffixes=("_part", "_full"))
    assert len(merged) == 10 and (merged["split_part"] == merged["split_full"]).all()
    assert set(full["split"]) == {"train", "validation"}
    assert (full["split"] == [split_of(p, 0.3) for p in full["doc_id"]]).all()


def test_limits_are_respected(fake_stdlib):
    by_files, _ = build_code_corpus(7, None, 0.1, stdlib_dir=str(fake_stdlib))
    assert len(by_files) == 7
    by_bytes, _ = build_code_corpus(None, 200, 0.1, stdlib_dir=str(fake_stdlib))
    assert 0 < by_bytes["n_bytes"].sum() <= 200
    real, _ = build_code_corpus(None, 300_000, 0.1)
    assert real["n_bytes"].sum() <= 300_000 and len(real) > 3


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_files": 0}, "max_files"), ({"max_bytes": -5}, "max_bytes"),
    ({"validation_fraction": 1.0}, "validation_fraction"), ({"stdlib_dir": "/no/such/dir"}, "stdlib_dir"),
])
def test_bad_arguments_are_named(kwargs, field):
    arguments = {"max_files": None, "max_bytes": None, "validation_fraction": 0.1, **kwargs}
    with pytest.raises(CodeCorpusError, match=field):
        build_code_corpus(**arguments)
