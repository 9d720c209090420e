"""Dagster side of the corpora: the facts world, the code corpus, user corpora, and their tokenizers.

Thin by design: configs with profile defaults, calls into the science modules, Parquet outputs through the
warehouse IO manager, tokenizers logged to MLflow, Great Expectations checks on every table.
"""

import dataclasses
import tempfile
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.corpora import validity
from resources.config import StudyConfig
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "corpora"
USER_INPUT_TAG = {"reprolab/input": "user"}  # assets that need a user's file: left out of the main job


# --------------------------------------------------------------------------------------------- facts world
class FactsWorldConfig(StudyConfig):
    """The seeded facts world: entities with attributes, authors, and documents with exact ground truth."""

    seed: int = 0
    n_people: int = Field(default=pick(tiny=60, demo=500, gpu=5000),
                          description="people in the world (the entities documents are about)")
    n_cities: int = Field(default=pick(tiny=12, demo=50, gpu=200),
                          description="cities a person's birth city is drawn from")
    n_organisations: int = Field(default=pick(tiny=15, demo=100, gpu=400),
                                 description="organisations a person's employer is drawn from")
    n_professions: int = Field(default=pick(tiny=8, demo=30, gpu=60),
                               description="professions; each owner favours its own share of them")
    n_owners: int = Field(default=pick(tiny=3, demo=4, gpu=6), description="copyright owners (1-8)")
    public_share: float = Field(default=0.4, description="share of documents by the public (non-owner) author")
    zipf_exponent: float = Field(default=1.1, description="s of the Zipf law over people: the person of "
                                 "frequency rank r is written about with weight r^-s (0: uniform)")
    stop_probability: float = Field(default=0.25, description="after each sentence, the document ends with this probability")
    n_train_documents: int = Field(default=pick(tiny=240, demo=2400, gpu=60000),
                                   description="unique documents in the train split (protected ones extra)")
    n_validation_documents: int = Field(default=pick(tiny=40, demo=300, gpu=3000),
                                        description="unique documents in the validation split")
    n_test_documents: int = Field(default=pick(tiny=40, demo=300, gpu=3000),
                                  description="unique documents in the test split")
    n_protected: int = Field(default=pick(tiny=6, demo=12, gpu=60),
                             description="protected documents: extra train documents by the owners (round "
                             "robin), each repeated per `protected_duplicates` and found nowhere else")
    protected_duplicates: list[int] = Field(default=[1, 4, 16], description="duplication levels of protected documents")

    def spec(self):
        from assets.corpora.facts_world import FactsWorldSpec

        names = {f.name for f in dataclasses.fields(FactsWorldSpec)}
        return FactsWorldSpec(**{k: v for k, v in self.model_dump().items() if k in names})


@dg.multi_asset(
    outs={
        "facts_world": dg.AssetOut(group_name=GROUP, tags=stage("data"), is_required=False, description="The facts world's spec and summary (a record)."),
        "facts_entities": dg.AssetOut(group_name=GROUP, tags=stage("data"), is_required=False, description="People, cities, organisations and professions."),
        "facts": dg.AssetOut(group_name=GROUP, tags=stage("data"), is_required=False, description="Each person's attributes: the facts a model can memorise."),
        "facts_documents": dg.AssetOut(group_name=GROUP, tags=stage("data"), is_required=False,
                     description="Documents: author, protected flag, duplicate count, split, text."),
        "facts_token_truth": dg.AssetOut(group_name=GROUP, tags=stage("data"), is_required=False,
                     description="Per-token ground truth: the true entropy and whether the token states a fact."),
    },
    can_subset=True,
)
@yields_selected
def facts_world(context: dg.AssetExecutionContext, config: FactsWorldConfig, warehouse: WarehousePaths):
    """Generate the facts world: Zipf-skewed entities, author styles, protected documents, exact ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from assets.corpora.facts_world import build_world, generate_documents, token_ground_truth

    spec = config.spec()
    world = build_world(spec)
    documents = generate_documents(world, spec)
    truth = token_ground_truth(world, documents)

    by_slot = truth.groupby("slot")["true_entropy"].agg(["count", "mean"]).reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    mentions = truth.loc[truth["slot"] == "name", "token"].value_counts().to_numpy()
    axes[0].loglog(range(1, len(mentions) + 1), mentions, ".")
    axes[0].set(title="mentions per person (Zipf)", xlabel="rank", ylabel="mentions")
    axes[1].bar(by_slot["slot"], by_slot["mean"])
    axes[1].set(title="mean true entropy by slot", ylabel="nats")
    plot = figure_metadata(fig, "corpora/facts_world", warehouse.root, context.run.run_id)

    record = {
        "spec": dataclasses.asdict(spec),
        "n_documents": len(documents),
        "n_tokens": len(truth),
        "n_people": len(world.people),
        "authors": sorted(documents["author"].unique().tolist()),
    }
    splits = documents.groupby("split").size().to_dict()
    yield dg.Output(record, output_name="facts_world",
                               metadata={"plot": plot, **{f"documents_{k}": int(v) for k, v in splits.items()}})
    yield dg.Output(world.entities, output_name="facts_entities")
    yield dg.Output(world.facts, output_name="facts")
    yield dg.Output(documents, output_name="facts_documents",
                               metadata={"by_split_and_author": markdown_table(
                                   documents.groupby(["split", "author"]).size().rename("documents").reset_index())})
    yield dg.Output(truth, output_name="facts_token_truth",
                               metadata={"by_slot": markdown_table(by_slot),
                                         "fact_tokens": int(truth["is_fact"].sum())})


# ------------------------------------------------------------------------------------------- code corpus
class CodeCorpusConfig(StudyConfig):
    """Real human-written text every machine has: the running Python's standard-library sources."""

    max_files: int | None = Field(default=pick(tiny=30, demo=400, gpu=None),
                                  description="at most this many source files, spread over the library "
                                  "(None: no limit)")
    max_bytes: int | None = Field(default=pick(tiny=250_000, demo=3_000_000, gpu=None),
                                  description="at most this many bytes of source in all; the first file that "
                                  "would pass it ends the selection (None: no limit)")
    validation_fraction: float = 0.1


@dg.asset(group_name=GROUP, tags=stage("data"))
def code_corpus(context: dg.AssetExecutionContext, config: CodeCorpusConfig) -> pd.DataFrame:
    """Python standard-library sources in a deterministic order, split train/validation by a hash of the path;
    the corpus content hash is stamped on every row (``corpus_hash``) for lineage."""
    from assets.corpora.code_corpus import build_code_corpus

    documents, corpus_hash = build_code_corpus(config.max_files, config.max_bytes, config.validation_fraction)
    documents = documents.assign(corpus_hash=corpus_hash)
    context.add_output_metadata({
        "corpus_hash": corpus_hash,
        "stdlib_dir": documents.attrs.get("stdlib_dir", ""),
        "bytes": int(documents["n_bytes"].sum()),
        "train_files": int((documents["split"] == "train").sum()),
        "validation_files": int((documents["split"] == "validation").sum()),
        "skipped_undecodable": int(documents.attrs.get("n_undecodable", 0)),
    })
    return pd.DataFrame(documents)


# ------------------------------------------------------------------------------------------- user corpus
class UserCorpusConfig(StudyConfig):
    """The user's own text: a .txt file (documents separated by blank lines), a folder of .txt files (one
    document each), a .jsonl file or a .parquet file with a text column."""

    path: str = Field(description="local file or folder with the corpus")
    text_column: str = "text"
    owner_column: str | None = Field(default=None, description="column naming each document's owner (copyright holder)")
    validation_fraction: float = 0.1
    seed: int = 0


@dg.asset(group_name=GROUP, tags={**USER_INPUT_TAG, **stage("data")})
def user_corpus(context: dg.AssetExecutionContext, config: UserCorpusConfig) -> pd.DataFrame:
    """A user's corpus read from local files, split train/validation (set ``path`` in the launchpad); every row
    names where it came from (``source_path``, resolved) and the exact bytes read (``corpus_hash``, sha256)."""
    from pathlib import Path

    from assets.corpora.user_corpus import corpus_hash, read_user_corpus

    documents = read_user_corpus(config.path, config.text_column, config.owner_column,
                                 config.validation_fraction, config.seed)
    lineage = {"source_path": str(Path(config.path).expanduser().resolve()), "corpus_hash": corpus_hash(config.path)}
    documents = documents.assign(**lineage)
    splits = documents["split"].value_counts()
    context.add_output_metadata({"source": config.path, **lineage, "characters": int(documents["text"].str.len().sum()),
                                 **{f"{split}_documents": int(splits.get(split, 0)) for split in ("train", "validation")}})
    return documents


# -------------------------------------------------------------------------------------------- tokenizers
class BPETokenizerConfig(StudyConfig):
    vocab_size: int = Field(default=pick(tiny=400, demo=2048, gpu=16384),
                            description="at most this many tokens, counting the specials and all 256 bytes")
    min_frequency: int = Field(default=2, description="a pair of tokens is merged only if it occurs at least "
                               "this many times in the corpus")


def _log_tokenizer(context, tracking: Tracking, tokenizer, corpus: str, kind: str,
                   lineage: dict[str, str] | None = None) -> dict[str, Any]:
    """Save a tokenizer in transformers' format, log it to MLflow, and return the record assets store;
    ``lineage`` (the corpus' ``corpus_hash``) goes into the record, the MLflow parameters and the metadata."""
    lineage = lineage or {}
    from assets.corpora.tokenization import save_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer(tokenizer, tmp)
        with tracking.start_run(f"tokenizer-{corpus}", dagster_run_id=context.run.run_id,
                                asset_key=context.asset_key.to_user_string(),
                                params={"kind": kind, "vocab_size": tokenizer.get_vocab_size(), **lineage}) as run_id:
            uri = tracking.log_artifacts(run_id, tmp, "tokenizer")
    record = {"tokenizer_uri": uri, "corpus": corpus, "kind": kind, "vocab_size": tokenizer.get_vocab_size(),
              **lineage, "mlflow_run_id": run_id, "mlflow_link": tracking.run_link(run_id)}
    context.add_output_metadata({"vocab_size": record["vocab_size"], "tokenizer_uri": uri, **lineage,
                                 "mlflow": dg.MetadataValue.url(record["mlflow_link"])})
    return record


@dg.asset(group_name=GROUP, tags=stage("data"))
def facts_tokenizer(context: dg.AssetExecutionContext, tracking: Tracking, facts_world: dict) -> dict:
    """Word-level tokenizer over every word the facts world can produce (one word = one token)."""
    from assets.corpora.facts_world import vocabulary, world_from_record
    from assets.corpora.tokenization import train_word_level_tokenizer

    tokenizer = train_word_level_tokenizer(vocabulary(world_from_record(facts_world)))
    return _log_tokenizer(context, tracking, tokenizer, "facts", "word-level")


@dg.asset(group_name=GROUP, tags=stage("data"))
def code_tokenizer(context: dg.AssetExecutionContext, config: BPETokenizerConfig, tracking: Tracking,
                   code_corpus: pd.DataFrame) -> dict:
    """Byte-level BPE trained on the code corpus' train split (lossless on any text)."""
    from assets.corpora.tokenization import train_bpe_tokenizer

    train = code_corpus.loc[code_corpus["split"] == "train", "text"]
    tokenizer = train_bpe_tokenizer(train, config.vocab_size, config.min_frequency)
    return _log_tokenizer(context, tracking, tokenizer, "code", "byte-level-bpe", _corpus_lineage(code_corpus))


@dg.asset(group_name=GROUP, tags={**USER_INPUT_TAG, **stage("data")})
def user_tokenizer(context: dg.AssetExecutionContext, config: BPETokenizerConfig, tracking: Tracking,
                   user_corpus: pd.DataFrame) -> dict:
    """Byte-level BPE trained on the user corpus' train split; its record names the corpus (``corpus_hash``)."""
    from assets.corpora.tokenization import train_bpe_tokenizer

    train = user_corpus.loc[user_corpus["split"] == "train", "text"]
    tokenizer = train_bpe_tokenizer(train, config.vocab_size, config.min_frequency)
    return _log_tokenizer(context, tracking, tokenizer, "user", "byte-level-bpe", _corpus_lineage(user_corpus))


def _corpus_lineage(documents: pd.DataFrame) -> dict[str, str]:
    """The corpus a tokenizer was trained on: its ``corpus_hash`` (and ``source_path``) when the rows carry them,
    and ``train_sha256``, the digest of the train split's texts in order: the bytes alone do not name what the
    tokenizer read, which the split's seed and fraction decide too."""
    import hashlib

    lineage = {column: str(documents[column].iloc[0]) for column in ("corpus_hash", "source_path")
               if column in documents.columns and len(documents) and documents[column].nunique() == 1}
    digest = hashlib.sha256()  # of the texts joined by "\x1e", fed one by one (a corpus may be large)
    for i, text in enumerate(documents.loc[documents["split"] == "train", "text"].astype(str)):
        digest.update(("\x1e" if i else "").encode() + text.encode())
    return {**lineage, "train_sha256": digest.hexdigest()}


# ---------------------------------------------------------------------------------------- data quality
@dg.asset_check(asset="facts_documents", description="ids unique, no empty documents, valid splits, "
                "protected documents only in train and duplicated at least once")
def facts_documents_valid(facts_documents: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.facts_documents(expectations(), facts_documents), name="facts_documents")


@dg.asset_check(asset="facts_token_truth", description="true entropies finite and non-negative, "
                "probabilities in (0, 1], fact tokens have zero entropy")
def facts_token_truth_valid(facts_token_truth: pd.DataFrame) -> dg.AssetCheckResult:
    result = gx_check(*validity.facts_token_truth(expectations(), facts_token_truth), name="facts_token_truth")
    fact_entropy = validity.max_fact_entropy(facts_token_truth)
    return dg.AssetCheckResult(passed=result.passed and fact_entropy == 0.0,
                               metadata={**result.metadata, "max_fact_entropy": fact_entropy})


@dg.asset_check(asset=code_corpus, description="paths unique, no empty files, both splits present")
def code_corpus_valid(code_corpus: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.code_corpus(expectations(), code_corpus), name="code_corpus")


@dg.asset_check(asset=user_corpus, description="ids unique, no empty documents, both splits present (a model "
                "trained on the corpus needs validation documents: one document, or validation_fraction 0, leaves "
                "none), one source and content hash")
def user_corpus_valid(user_corpus: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.user_corpus(expectations(), user_corpus), name="user_corpus")


defs = dg.Definitions(
    assets=[facts_world, code_corpus, user_corpus, facts_tokenizer, code_tokenizer, user_tokenizer],
    asset_checks=[facts_documents_valid, facts_token_truth_valid, code_corpus_valid, user_corpus_valid],
)
