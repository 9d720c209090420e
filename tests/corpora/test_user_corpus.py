"""Reading the user's own corpus: every format, and a clear error for every way it can be wrong."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from assets.corpora.user_corpus import UserCorpusError, read_user_corpus


def _jsonl(path, objects):
    path.write_text("\n".join(json.dumps(o) for o in objects) + "\n", encoding="utf-8")
    return path


def test_txt_file_splits_documents_at_blank_lines(tmp_path):
    path = tmp_path / "essays.txt"
    path.write_text("First document\nstill first.\n\n\n  Second, indented.\r\n \r\nThird ✓\n\n   \n",
                    encoding="utf-8")
    documents = read_user_corpus(path, validation_fraction=0.0)
    assert list(documents.columns) == ["doc_id", "split", "text"]
    assert documents["text"].tolist() == ["First document\nstill first.", "  Second, indented.", "Third ✓"]
    assert documents["doc_id"].tolist() == ["essays.txt:1", "essays.txt:2", "essays.txt:3"]
    assert (documents["split"] == "train").all()
    # a blank (or whitespace-only) line added at the top renames nothing: ids count the documents
    path.write_text(" \n\nFirst document\nstill first.\n\n  Second, indented.\n\nThird ✓\n", encoding="utf-8")
    pd.testing.assert_frame_equal(read_user_corpus(path, validation_fraction=0.0), documents)


def test_directory_of_txt_files_one_document_each_with_owner_folders(tmp_path):
    for owner, n in (("alice", 3), ("bob", 2)):
        (tmp_path / owner).mkdir()
        for i in range(n):
            (tmp_path / owner / f"doc{i}.txt").write_text(f"{owner} wrote {i}\n\nwith a blank line\n")
    (tmp_path / "alice" / "ignored.md").write_text("not a txt file")
    documents = read_user_corpus(tmp_path, owner_column="owner", validation_fraction=0.2, seed=1)
    assert list(documents.columns) == ["doc_id", "split", "text", "owner"]
    assert documents["doc_id"].tolist() == [f"alice/doc{i}.txt" for i in range(3)] + ["bob/doc0.txt",
                                                                                       "bob/doc1.txt"]
    assert documents["owner"].tolist() == ["alice"] * 3 + ["bob"] * 2
    assert documents["text"].iloc[0] == "alice wrote 0\n\nwith a blank line\n"
    assert (documents["split"] == "validation").sum() == 1


def test_hidden_files_and_folders_are_not_documents(tmp_path):
    """Jupyter's `.ipynb_checkpoints` copies were read as documents (a duplicate of an essay could land in
    validation beside its original in train), and a macOS `._` AppleDouble file stopped the read as non-UTF-8."""
    from assets.corpora.user_corpus import corpus_hash

    (tmp_path / "alice" / ".ipynb_checkpoints").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "alice" / f"e{i}.txt").write_text(f"alice essay {i}\n")
        (tmp_path / "alice" / ".ipynb_checkpoints" / f"e{i}-checkpoint.txt").write_text(f"alice essay {i}\n")
    (tmp_path / "alice" / "._e0.txt").write_bytes(b"\x00\x05\x16\x07\xff")
    before = corpus_hash(tmp_path)
    documents = read_user_corpus(tmp_path, owner_column="owner", validation_fraction=0.5, seed=0)
    assert documents["doc_id"].tolist() == [f"alice/e{i}.txt" for i in range(4)]
    assert not set(documents.loc[documents["split"] == "train", "text"]) & set(
        documents.loc[documents["split"] == "validation", "text"])
    (tmp_path / "alice" / ".ipynb_checkpoints" / "e0-checkpoint.txt").write_text("edited in a checkpoint\n")
    assert corpus_hash(tmp_path) == before  # hidden files are not the corpus
    (tmp_path / "only_hidden" / ".git").mkdir(parents=True)
    (tmp_path / "only_hidden" / ".git" / "notes.txt").write_text("x")
    with pytest.raises(UserCorpusError, match="no .txt files outside hidden folders"):
        read_user_corpus(tmp_path / "only_hidden")


def test_a_lone_surrogate_in_json_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "cut \\ud83d"}\n', encoding="utf-8")
    with pytest.raises(UserCorpusError, match=r"c.jsonl: line 2: field 'text' holds a lone surrogate"):
        read_user_corpus(path)


def test_jsonl_with_owner_and_seeded_split(tmp_path):
    objects = [{"body": f"text number {i}", "who": f"o{i % 3}"} for i in range(20)]
    path = _jsonl(tmp_path / "corpus.jsonl", objects)
    documents = read_user_corpus(path, text_column="body", owner_column="who", validation_fraction=0.25)
    assert len(documents) == 20 and documents["doc_id"].is_unique
    assert documents["doc_id"].iloc[4] == "corpus.jsonl:5"
    assert documents["owner"].tolist() == [o["who"] for o in objects]
    assert (documents["split"] == "validation").sum() == 5
    again = read_user_corpus(path, text_column="body", owner_column="who", validation_fraction=0.25)
    other = read_user_corpus(path, text_column="body", owner_column="who", validation_fraction=0.25, seed=5)
    pd.testing.assert_frame_equal(documents, again)
    assert not documents["split"].equals(other["split"])


def test_a_document_keeps_its_side_when_the_corpus_grows(tmp_path):
    """The split ranks documents by a seeded hash of their text: appending a document moves at most the one at
    the cut (the old permutation by position moved 4 of 10 validation documents into train), reordering moves
    none, and a copy of a validation text that is appended is no train document beside it unless at the cut."""
    objects = [{"text": f"essay number {i}"} for i in range(100)]
    before = read_user_corpus(_jsonl(tmp_path / "a.jsonl", objects), validation_fraction=0.1, seed=3)
    grown = read_user_corpus(_jsonl(tmp_path / "b.jsonl", [*objects, {"text": "one more essay"}]),
                             validation_fraction=0.1, seed=3)
    validation = set(before.loc[before["split"] == "validation", "text"])
    assert len(validation) == 10 and len(validation - set(grown.loc[grown["split"] == "validation", "text"])) <= 1
    shuffled = read_user_corpus(_jsonl(tmp_path / "c.jsonl", objects[::-1]), validation_fraction=0.1, seed=3)
    assert set(shuffled.loc[shuffled["split"] == "validation", "text"]) == validation
    copied = read_user_corpus(_jsonl(tmp_path / "d.jsonl", [*objects, *objects[:50]]), validation_fraction=0.1, seed=3)
    sides = copied.groupby("text")["split"].nunique()
    assert (sides > 1).sum() <= 1  # copies rank side by side: only a pair at the cut can part


def test_parquet_drops_empty_documents(tmp_path):
    path = tmp_path / "corpus.parquet"
    pd.DataFrame({"text": ["alpha", "   ", "gamma"], "owner": ["a", "b", "c"]}).to_parquet(path)
    documents = read_user_corpus(path, owner_column="owner", validation_fraction=0.5)
    assert documents["text"].tolist() == ["alpha", "gamma"]
    assert documents["doc_id"].tolist() == ["corpus.parquet:0", "corpus.parquet:2"]
    assert sorted(documents["split"]) == ["train", "validation"]


def test_missing_path(tmp_path):
    with pytest.raises(UserCorpusError, match="nothere.jsonl.*no such file"):
        read_user_corpus(tmp_path / "nothere.jsonl")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "corpus.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(UserCorpusError, match=r"corpus.csv.*unsupported extension '.csv'"):
        read_user_corpus(path)


@pytest.mark.parametrize("content", ["", "\n\n   \n", None])
def test_empty_corpus(tmp_path, content):
    if content is None:
        path = _jsonl(tmp_path / "c.jsonl", [{"text": ""}, {"text": "  "}])
    else:
        path = tmp_path / "c.txt"
        path.write_text(content)
    with pytest.raises(UserCorpusError, match="c\\.(txt|jsonl).*empty"):
        read_user_corpus(path)


def test_directory_without_txt_files(tmp_path):
    (tmp_path / "a.md").write_text("hello")
    with pytest.raises(UserCorpusError, match="no .txt files"):
        read_user_corpus(tmp_path)


def test_missing_column_lists_available_ones(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"content": ["a"], "author": ["x"]}).to_parquet(path)
    with pytest.raises(UserCorpusError, match=r"c.parquet.*'text'.*\['content', 'author'\]"):
        read_user_corpus(path)
    with pytest.raises(UserCorpusError, match="'owner'.*owner_column"):
        read_user_corpus(path, text_column="content", owner_column="owner")
    jsonl = _jsonl(tmp_path / "c.jsonl", [{"text": "ok"}, {"body": "no text"}])
    with pytest.raises(UserCorpusError, match=r"c.jsonl: line 2: no field 'text'.*\['body'\]"):
        read_user_corpus(jsonl)


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("ok ✓ then ".encode() + b"caf\xe9\n")
    with pytest.raises(UserCorpusError, match=r"latin.txt.*0xe9 at byte offset 15"):
        read_user_corpus(path)


def test_bad_json_line_names_line_number(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "broken"\n', encoding="utf-8")
    with pytest.raises(UserCorpusError, match=r"c.jsonl: line 3: invalid JSON"):
        read_user_corpus(path)
    path.write_text('{"text": "fine"}\n["not", "an", "object"]\n', encoding="utf-8")
    with pytest.raises(UserCorpusError, match=r"line 2: expected a JSON object"):
        read_user_corpus(path)


def test_non_string_text_values(tmp_path):
    jsonl = _jsonl(tmp_path / "c.jsonl", [{"text": "ok"}, {"text": 42}])
    with pytest.raises(UserCorpusError, match=r"c.jsonl: line 2: field 'text' must be a string, got int"):
        read_user_corpus(jsonl)
    parquet = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["ok", None]}).to_parquet(parquet)
    with pytest.raises(UserCorpusError, match=r"c.parquet: row 1: column 'text' must be a string, got None"):
        read_user_corpus(parquet)


def test_owner_requires_a_format_with_owners(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello")
    with pytest.raises(UserCorpusError, match="no owners"):
        read_user_corpus(path, owner_column="owner")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loose.txt").write_text("hello")
    with pytest.raises(UserCorpusError, match="loose.txt.*subfolder"):
        read_user_corpus(tmp_path / "d", owner_column="owner")


def test_bad_validation_fraction(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello")
    with pytest.raises(UserCorpusError, match="validation_fraction"):
        read_user_corpus(path, validation_fraction=1.5)


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 raw inside a string; only "\\n" ends a line (a "\\r" before it too)."""
    texts = ["one\u2028two", "para\u2029graph", "next\u0085line"]
    path = tmp_path / "c.jsonl"
    path.write_bytes("\r\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts).encode("utf-8"))
    documents = read_user_corpus(path, validation_fraction=0.0)
    assert documents["text"].tolist() == texts
    assert documents["doc_id"].tolist() == ["c.jsonl:1", "c.jsonl:2", "c.jsonl:3"]


@pytest.mark.parametrize("blank", ["\xa0", "\u2003", " \u3000\t", "\u2028"])
def test_txt_a_line_of_any_unicode_whitespace_separates_documents(tmp_path, blank):
    path = tmp_path / "c.txt"
    path.write_text(f"{blank}\ndoc one\n{blank}\ndoc two\nstill two\n{blank}\n", encoding="utf-8")
    assert read_user_corpus(path, validation_fraction=0.0)["text"].tolist() == ["doc one", "doc two\nstill two"]


def test_txt_old_mac_and_windows_line_endings(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"first line\rstill first\r\rsecond\r\n\r\nthird\r")
    assert read_user_corpus(path, validation_fraction=0.0)["text"].tolist() == [
        "first line\nstill first", "second", "third"]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"x\ry\r\nz")
    assert read_user_corpus(tmp_path / "d", validation_fraction=0.0)["text"].tolist() == ["x\ny\nz"]


def test_corpus_hash_names_the_bytes(tmp_path):
    from assets.corpora.user_corpus import corpus_hash

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _jsonl(tmp_path / folder / "corpus.jsonl", [{"text": "same"}])
    one, other = corpus_hash(tmp_path / "a" / "corpus.jsonl"), corpus_hash(tmp_path / "b" / "corpus.jsonl")
    assert one == other and len(one) == 64  # a content hash: the path is recorded beside it
    _jsonl(tmp_path / "b" / "corpus.jsonl", [{"text": "changed"}])
    assert corpus_hash(tmp_path / "b" / "corpus.jsonl") != one
    before = corpus_hash(tmp_path)  # a folder: its .txt files' paths and bytes
    (tmp_path / "a" / "x.txt").write_text("doc")
    after = corpus_hash(tmp_path)
    (tmp_path / "a" / "x.txt").write_text("doc!")
    assert len({before, after, corpus_hash(tmp_path)}) == 3
