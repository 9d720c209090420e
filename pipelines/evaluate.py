"""`reprolab evaluate`: the safety battery against any OpenAI-compatible endpoint, into the warehouse's safety
tables (keyed by endpoint, the model id it reports answering with, and the requested reasoning budget; each
row also says its answer cap, --max-items and seed: responders.REQUEST_COLUMNS). Requests the endpoint rejects or fails on are counted apart and never
graded; nothing is written when it replied to none of them. An error of the endpoint as a whole (its key, its
URL, no connection, a status concerning it all) is reported in one line (exit 2); any other error raises. The
tables written are recorded as materializations in the Dagster instance (`record_in_instance`), so a later
run reading safety_results (e.g. re-materializing safety_system_card alone) reads them. Wired into the
command line by `pipelines.cli`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from pathlib import Path

from resources.catalog import refresh_catalog


def cmd_evaluate(args) -> int:
    """The safety battery over an endpoint; its rows replace that endpoint's earlier rows of the same model at the
    same requested budget in new materializations of safety_results and safety_system_card (everyone else's
    rows kept, and this model's at other budgets; later runs of the graph carry them forward; the Dagster
    instance records them). The model is the one the endpoint reports answering with (`reprolab serve`: an
    identity that changes with the weights, with its model_uri), so a different model is never stored over
    another's rows. --max-items samples each of the suite's
    evaluations (whole requests) and each benchmark file with --seed (a file as safety_results samples it with its seed). Requests the endpoint rejected or failed on are counted
    apart, never graded: exit 1 (nothing written) when it replied to none of them, a warning when it rejected
    some."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    import pandas as pd

    from assets.chat.client import Endpoint
    from assets.safety.benchmarks import graded_benchmarks, sample_suite, with_benchmarks
    from assets.safety.responders import (
        mark_request_errors,
        replace_rows,
        stored_with_provenance,
        system_card,
        with_provenance,
        with_request_columns,
    )
    from assets.safety.tables import answer_caps, budget_request
    from resources.store import active_store
    from resources.tables import (
        LINEAGE_COLUMNS,
        Lineage,
        WarehouseError,
        latest_file,
        read_table,
        write_table,
    )

    root = Path(args.warehouse).resolve()  # recorded paths are absolute, as the warehouse IO manager's
    try:
        items_file = latest_file(root, "safety", "safety_items")
    except WarehouseError as exc:
        print(f"error: {exc}: materialize safety_items first (make demo, or the UI)", file=sys.stderr)
        return 2
    endpoint = Endpoint(args.base_url, args.model, args.api_key_env)
    suite = read_table(items_file)
    try:  # the benchmark sample is seeded as safety_results seeds it (its config.seed): --seed
        items = with_benchmarks(sample_suite(suite, args.max_items, args.seed), args.benchmark or [],
                                args.max_items, args.seed)
    except (ValueError, OSError) as exc:
        print(f"error: a benchmark file could not be read: {exc}", file=sys.stderr)
        return 2
    settings = SimpleNamespace(splits=("eval",), max_answer_tokens=args.max_tokens,
                               regurgitation_answer_tokens=args.regurgitation_max_tokens)
    try:
        parts = answer_caps(items, settings)
    except ValueError as exc:  # a regurgitation cap with no room to regurgitate
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # asked as safety_results asks an endpoint: at the budget and seed, regurgitation with room to run on
    request = {"temperature": 0.0, "seed": args.seed, **budget_request(args.budget)}
    asked, error = _ask(endpoint, parts, request)
    if asked is None:  # the endpoint's, the key's or the connection's error, in one line
        print(f"error: evaluating {args.base_url} failed: {error.splitlines()[0] if error else ''}", file=sys.stderr)
        return 2
    new = mark_request_errors(graded_benchmarks(pd.concat(asked, ignore_index=True), items))  # a bug here raises
    new = with_request_columns(new, {"max_items": args.max_items})  # the rest: the request's, per row
    replied = _report_requests(args, asked, [cap for _, cap in parts])
    if not replied:
        print(f"error: {args.base_url} rejected or failed on every one of the {len(new)} requests; nothing was "
              "written to the warehouse", file=sys.stderr)
        return 1
    run_id, now = f"evaluate-{uuid.uuid4()}", datetime.now(UTC)
    new = with_provenance(new, run_id, now)
    served = sorted(u for u in set(new["model_uri"]) if u.startswith("models:/"))  # a registered model's version
    upstream = [f"safety.safety_items:{items_file.stem}", *served]
    try:
        previous_file = latest_file(root, "safety", "safety_results")
        previous = stored_with_provenance(read_table(previous_file, with_lineage=True), LINEAGE_COLUMNS)
        upstream = [*upstream, f"safety.safety_results:{previous_file.stem}"]
    except WarehouseError:
        previous = None
    results = replace_rows(previous, new)
    lineage = Lineage(run_id=run_id, code_version="evaluate-2", upstream=upstream,
                      materialized_at=now, resolution={u: "latest" for u in upstream})
    store = active_store()  # a shared lab: the new tables go to the object store too
    written = {}
    for name, frame in (("safety_results", results), ("safety_system_card", system_card(results))):
        path = write_table(root, "safety", name, frame, lineage)
        written[name] = (store.publish(path) if store is not None else str(path), path.stem, len(frame))
    refresh_catalog(root, [("safety", "safety_results"), ("safety", "safety_system_card")])
    home, why = record_in_instance(root, written, run_id)
    if home is None:
        print(f"note: {why}: a run that re-materializes safety_system_card alone reads the safety_results its "
              "instance recorded, without these rows", file=sys.stderr)
    card = system_card(new)
    print(f"{int(new['answered'].sum())} of {len(new)} items answered and graded for {_served(new)} at "
          f"{args.base_url} (asked: {_asked(args, suite, new)}; run {run_id}); the tables safety.safety_results and "
          "safety.safety_system_card now hold them")
    from pipelines.summary import print_frame

    print_frame(card[["evaluation", "metric", "value", "n"]], "table")
    return 0


def _served(rows) -> str:
    """The model(s) the endpoint reported answering with, each with the model_uri it lists for it (when it does)."""
    pairs = rows[["model", "model_uri"]].drop_duplicates()
    return ", ".join(f"{m} ({u})" if u else m for m, u in pairs.itertuples(index=False))


def _asked(args, suite, asked) -> str:
    """Which items were asked: the suite's eval items (all, or the --max-items sample of each evaluation) and
    the benchmark files' items."""
    from assets.safety.benchmarks import BENCHMARKS

    from_files = int(asked["set"].isin(BENCHMARKS).sum()) if args.benchmark else 0
    of_suite = len(asked) - from_files
    total = int((suite["split"] == "eval").sum())
    text = (f"{of_suite} of the suite's {total} eval items" if args.max_items else f"the suite's {total} eval items")
    if args.benchmark:
        text += f", {from_files} from {len(args.benchmark)} benchmark file{'s' if len(args.benchmark) > 1 else ''}"
    if args.max_items:
        text += f"; --max-items {args.max_items} per evaluation and per file, seed {args.seed}"
    return text + f"; reasoning budget {args.budget}, answers of at most {args.max_tokens} tokens"


def instance_homes(root: Path) -> list[Path]:
    """The Dagster instance folders that may hold this warehouse's runs, in order: $DAGSTER_HOME, then a
    `dagster_home` folder beside the warehouse (the layout of `reprolab demo` and `make` in the project folder)."""
    import os

    homes = [Path(os.environ["DAGSTER_HOME"]).resolve()] if os.environ.get("DAGSTER_HOME") else []
    beside = Path(root).resolve().parent / "dagster_home"
    return [h for h in dict.fromkeys([*homes, beside]) if h.is_dir()]


@contextlib.contextmanager
def _opened(home: Path):
    """The instance in ``home``, opened with DAGSTER_HOME pointing there (the project's dagster.yaml reads it)."""
    import os

    import dagster as dg

    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if before is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = before


def _records_this_warehouse(instance, root: Path) -> bool:
    """Whether the instance's latest safety_items (what evaluate read its items from) is this warehouse's: it lives
    under ``root``, or (the warehouse was moved or copied with its instance) its file is here under the same
    materialization id. The instance is then this warehouse's, not another lab's."""
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey("safety_items"))
    entry = event.asset_materialization.metadata.get("path") if event and event.asset_materialization else None
    if entry is None:
        return False
    recorded = Path(str(entry.value))
    return recorded.resolve().is_relative_to(root) or (Path(root) / "safety" / "safety_items" /
                                                       f"{recorded.stem}.parquet").exists()


def record_in_instance(root: Path, written: dict[str, tuple[str, str, int]], run_id: str) -> tuple[Path | None, str]:
    """Record each table `reprolab evaluate` wrote (name -> (location, materialization id, rows)) as a
    materialization of its asset in this warehouse's Dagster instance (the first of `instance_homes` whose latest
    safety_items lives under ``root``), with the metadata the warehouse IO manager records (path,
    materialization_id, table): a later run reads these files as the assets' latest (resources.warehouse resolves
    an input to the latest materialization at launch), so re-materializing safety_system_card alone keeps the
    endpoint's rows. Returns (the instance's folder, "") or (None, why nothing was recorded)."""
    import dagster as dg

    homes = instance_homes(root)
    if not homes:
        return None, "no Dagster instance found (DAGSTER_HOME unset, no dagster_home beside the warehouse)"
    for home in homes:
        try:
            with _opened(home) as instance:
                if not _records_this_warehouse(instance, root):
                    continue
                for name, (location, materialization_id, rows) in written.items():
                    instance.report_runless_asset_event(dg.AssetMaterialization(
                        asset_key=name, description=f"written by reprolab evaluate (run {run_id})",
                        metadata={"path": dg.MetadataValue.path(location), "materialization_id": materialization_id,
                                  "table": f"safety.{name}", "dagster/row_count": rows,
                                  "evaluate_run_id": run_id}))
            return home, ""
        except Exception as exc:  # noqa: BLE001 - the tables are written; recording them is a convenience
            return None, f"the Dagster instance in {home} could not record the tables ({type(exc).__name__}: {exc})"
    return None, (f"no Dagster instance among {', '.join(map(str, homes))} materialized this warehouse's "
                  "safety_items")


def _ask(endpoint, parts: list, request: dict) -> tuple[list | None, str]:
    """Every (items, answer cap) part asked of the endpoint through one client, closed at the end: (the rows per
    part, "") or (None, the error) when the endpoint as a whole failed: no key or not an http(s) URL, no model
    listed, no connection, or a status that concerns the whole endpoint (responders.ENDPOINT_STATUSES; other
    4xx/5xx are rows with a request_error). Any other error (the battery's, the grading's) propagates."""
    import openai

    from assets.chat.client import close_client, resolved
    from assets.safety.responders import run_endpoint

    try:
        client = endpoint.client()
    except ValueError as exc:  # no key in the environment, not an http(s) URL
        return None, str(exc)
    try:
        try:
            endpoint = resolved(endpoint, client)  # the model id, listed once
        except ValueError as exc:  # the endpoint lists no models
            return None, str(exc)
        return [run_endpoint(endpoint, part, client=client, max_tokens=cap, **request) for part, cap in parts], ""
    except openai.APIError as exc:  # no connection, a timeout, a status concerning the whole endpoint
        return None, str(exc)
    finally:
        close_client(client)


# a rejection by our own server (pipelines/serve.py): the prompt and the answer cap do not fit the model
_NO_ROOM = r"a prompt of (\d+) tokens leaves no room for an answer of (\d+) tokens within the model's (\d+) positions"


def _report_requests(args, asked: list, caps: list[int]) -> int:
    """Print (stderr) how many requests the endpoint answered, answered empty, rejected and failed on, the
    first error, and what to change when prompts did not fit its context; return the number it replied to."""
    import re

    import pandas as pd

    from assets.safety.responders import request_counts

    counts = pd.concat([request_counts(part) for part in asked], ignore_index=True)
    total, answered, empty, rejected, failed = (int(counts[c].sum()) for c in
                                                ("asked", "answered", "empty", "rejected", "failed"))
    print(f"{args.base_url}: {total} requests: {answered} answered, {empty} answered empty, {rejected} rejected, "
          f"{failed} failed (only answers are graded; empty, rejected and failed are left out of every metric)",
          file=sys.stderr)
    errors = [e for e in counts["first_error"] if e]
    if errors:
        print(f"{'error' if rejected + failed == total else 'warning'}: {rejected + failed} of {total} requests got "
              f"no reply; the first error: {errors[0]}", file=sys.stderr)
    for part, cap in zip(asked, caps, strict=True):
        no_room = [re.search(_NO_ROOM, e) for e in part["request_error"]]
        prompts = [(int(m[1]), int(m[3])) for m in no_room if m]
        if not prompts:
            continue
        positions = prompts[0][1]
        fitting = [n for n, _ in prompts if n + 3 + 1 <= positions]  # close, answer marker, end, one answer token
        flag = "--regurgitation-max-tokens" if (part["evaluation"] == "regurgitation").all() else "--max-tokens"
        print(f"hint: the model has {positions} positions: {len(prompts) - len(fitting)} prompts are too long for "
              "it whatever the answer cap" + (f"; the others fit with {flag} {positions - max(fitting) - 3} (now {cap})"
                                              if fitting else ""), file=sys.stderr)
    if answered == 0 and empty:
        print("warning: every reply was empty (no answer words): the metrics are undefined (n=0)", file=sys.stderr)
    return total - rejected - failed


def budget_arg(text: str) -> str:
    """--budget: a token count (an int >= 0) or an effort level; anything else is refused before a request."""
    from assets.chat.budget import EFFORT_BUDGETS

    if text.strip().isdigit() or text.strip() in EFFORT_BUDGETS:
        return text.strip()
    raise argparse.ArgumentTypeError(f"{text!r} is neither a token count (an int >= 0) nor an effort level: "
                                     f"use one of {', '.join(EFFORT_BUDGETS)} or a number such as 16")
