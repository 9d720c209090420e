"""The user corpus in the graph: two files both named corpus.jsonl in different folders give rows that say which
file (``source_path``) and which bytes (``corpus_hash``) they came from, and the tokenizer trained on each names
its corpus' hash."""

import hashlib
import json

import dagster as dg

from assets.corpora.defs import user_corpus, user_corpus_valid, user_tokenizer


def test_user_corpus_rows_and_tokenizer_name_their_source(tmp_path, warehouse_root, resources_for):
    from resources.catalog import query

    folders = {"alice": "the quick brown fox jumps", "bob": "over the lazy dog again"}
    hashes, paths = {}, {}
    for folder, words in folders.items():
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "corpus.jsonl"
        path.write_text("\n".join(json.dumps({"text": f"{words} {i}"}) for i in range(12)), encoding="utf-8")
        result = dg.materialize(
            [user_corpus, user_tokenizer, user_corpus_valid], resources=resources_for,
            run_config={"ops": {"user_corpus": {"config": {"path": str(path)}},
                                "user_tokenizer": {"config": {"vocab_size": 300}}}})
        rows, record = result.output_for_node("user_corpus"), result.output_for_node("user_tokenizer")
        assert set(rows["source_path"]) == {str(path.resolve())}
        hashes[folder], paths[folder] = rows["corpus_hash"].iloc[0], rows["source_path"].iloc[0]
        assert rows["corpus_hash"].nunique() == 1 and len(hashes[folder]) == 64
        assert record["corpus_hash"] == hashes[folder] and record["source_path"] == paths[folder]
        train = "\x1e".join(rows.loc[rows["split"] == "train", "text"])  # what the tokenizer read, by content
        assert record["train_sha256"] == hashlib.sha256(train.encode()).hexdigest()
        checks = result.get_asset_check_evaluations()
        assert [c.check_name for c in checks] == ["user_corpus_valid"] and checks[0].passed
        metadata = result.asset_materializations_for_node("user_corpus")[0].metadata
        assert metadata["corpus_hash"].value == hashes[folder] and metadata["validation_documents"].value == 1
    assert hashes["alice"] != hashes["bob"] and paths["alice"] != paths["bob"]
    seen = query(warehouse_root, "SELECT DISTINCT source_path, corpus_hash FROM corpora.user_corpus_history")
    assert sorted(map(tuple, seen.to_numpy())) == sorted((paths[f], hashes[f]) for f in folders)
