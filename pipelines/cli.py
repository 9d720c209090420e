"""The `reprolab` command: run the demo, query the catalog, rebuild it, open the MLflow UI.

    reprolab demo [--config FILE]     materialize the main job through the instance in $DAGSTER_HOME (with a
                                      run config, e.g. resources, merged over the defaults)
    reprolab query "SELECT ..."       one read-only SQL statement over the catalog (--format table|csv|json);
                                      several statements are refused: run them one at a time
    reprolab tables                   the views in the catalog
    reprolab summary                  what the warehouse holds, and the headline findings (those with a rule,
                                      with or without a reference; `reprolab query "SELECT * FROM findings"`
                                      shows every row)
    reprolab catalog                  rebuild catalog.duckdb from the Parquet files
    reprolab init                     create the Dagster and MLflow stores once, under a lock (make does this)
    reprolab recover                  fail runs whose worker died (kill -9) and free their pool slots
    reprolab report [--out FILE]      the static HTML report (default warehouse/report/index.html)
    reprolab mlflow-ui [--port N]     the MLflow UI on the warehouse's tracking store
    reprolab serve MODEL [--port N]   an OpenAI-compatible server for a chat model (models:/chat-sft@current or a
                                      checkpoint directory) on 127.0.0.1
    reprolab evaluate --base-url URL --model NAME [--benchmark FILE ...] [--max-items N]
                                      the safety battery against any OpenAI-compatible endpoint, into the
                                      warehouse's safety tables (keyed by endpoint and model; later runs of the
                                      graph keep them, and the instance in $DAGSTER_HOME, or dagster_home beside
                                      the warehouse, records them); requests the endpoint rejects are counted,
                                      not graded; --max-items N asks a seeded sample of at most N requests of
                                      each evaluation (each whole) and N items of each benchmark file

A misspelt REPROLAB_PROFILE is refused in one line (exit status 2) by the commands that run or write for the
lab (demo, init, recover, evaluate, serve), before they do anything; the commands that only read what runs
wrote (query, tables, summary, catalog, report, mlflow-ui) never read the profile and ignore it. Output piped
into a reader that stops early (`| head`) ends quietly with status 141, as a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from pipelines.evaluate import budget_arg, cmd_evaluate
from pipelines.run_config import demo_run_config
from pipelines.serve import NAME_HELP
from pipelines.summary import findings_summary, print_frame, summary_frame
from resources.catalog import CatalogError, list_views, query, refresh_catalog
from resources.settings import default_warehouse_root

# the commands that only read what runs wrote: REPROLAB_PROFILE means nothing to them (the others refuse a misspelt one)
PROFILE_FREE_COMMANDS = ("query", "tables", "summary", "catalog", "report", "mlflow-ui")


def cmd_summary(args) -> int:
    """What the warehouse holds and its headline findings; no catalog: `error: ...` on stderr, exit 2, as the other
    commands that read the catalog."""
    root = args.warehouse
    try:  # everything read before anything is printed: a refusal prints one line, on stderr
        tables, views = summary_frame(root), list_views(root)
        has_findings = ((views["schema"] == "main") & (views["view"] == "findings")).any()
        findings = findings_summary(root) if has_findings else None
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"warehouse: {Path(root).resolve()}")
    print(f"catalog:   {Path(root).resolve() / 'catalog.duckdb'}  (query it: reprolab query \"SELECT ...\")")
    print_frame(tables, "table")
    if findings is not None:
        print("\nfindings (ours vs the reference, and where the reference comes from):")
        print_frame(findings[0], "table", missing="")  # a finding without a reference: a blank, not NULL
        print(findings[1])
    return 0


def cmd_demo(args) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    from dagster import DagsterInstance

    from pipelines.definitions import PROFILE, defs
    from pipelines.jobs import MAIN_SELECTION
    from pipelines.recovery import recover
    from pipelines.run_progress import RunProgress, failed_checks
    from pipelines.stores import init_stores

    job = defs.resolve_job_def("main")
    try:  # refused before anything starts or is announced
        run_config = demo_run_config(job, args.config, verbose=args.verbose)
    except (OSError, ValueError) as exc:
        print(f"reprolab demo: {exc}", file=sys.stderr)
        return 2
    init_stores(args.warehouse)
    instance = DagsterInstance.get()
    from resources.tracking import Tracking

    # a run killed earlier must not hold the gpu pool slot this run needs (nor an alias its failed step moved)
    recover(instance, tracking=Tracking(warehouse_root=str(Path(args.warehouse).resolve())))
    total = len(MAIN_SELECTION.resolve(defs.resolve_asset_graph()))
    run_id = str(uuid.uuid4())
    _stop_on_signals(instance, run_id)
    print(f"running job 'main' ({total} assets) on profile {PROFILE!r} with DAGSTER_HOME={os.environ['DAGSTER_HOME']}\n"
          f"run {run_id}: one line per materialized asset; the full log is in `make ui`"
          f"{'' if args.verbose else ' (or rerun with --verbose)'}", flush=True)
    start = time.time()
    progress = RunProgress(instance, run_id, total).start()
    try:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_id=run_id, run_config=run_config)
    finally:
        progress.stop()
    minutes = (time.time() - start) / 60
    checks = failed_checks(result.get_asset_check_evaluations())
    failed = ", ".join(progress.failed)
    status = "succeeded" if result.success else (f"FAILED (steps: {failed})" if failed else
                                                 "FAILED before any step failed (see the log above)")
    if checks["ERROR"]:  # data checks do not block, so a run can succeed with tables that broke their rules
        status += f", but {len(checks['ERROR'])} data checks FAILED: {', '.join(checks['ERROR'])}"
    print(f"\nrun {result.run_id} {status} in {minutes:.1f} min, {progress.done}/{total} assets materialized; "
          f"{len(checks['WARN'])} checks warn (findings not reproduced, an untrusted judge: `make ui`)\n")
    if not result.success and not progress.done:  # nothing new: the summary would show the last run's tables
        return 1
    cmd_summary(args)
    report = Path(args.warehouse) / "report" / "index.html"
    print(f"\nnext: `make report` writes {report.resolve()}; `make ui` opens the Dagster UI on http://127.0.0.1:3000;"
          f" `reprolab query \"SELECT * FROM findings\"` queries the catalog")
    return 0 if result.success and not checks["ERROR"] else 1


def _stop_on_signals(instance, run_id: str) -> None:
    """Ctrl-C or SIGTERM stop `reprolab demo` at once: the run is marked canceled and its pool slots freed (an
    in-process run waiting for a slot would otherwise ignore them). The step under way is abandoned."""
    import signal

    def stop(signum, frame):
        from pipelines.recovery import free_slots

        print(f"\n{signal.Signals(signum).name}: stopping run {run_id}; marking it canceled and freeing its pool "
              "slots", file=sys.stderr, flush=True)
        try:
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_canceled(run, message=f"reprolab demo stopped by {signal.Signals(signum).name}")
            free_slots(instance, run_id)
        finally:
            os._exit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def cmd_init(args) -> int:
    from pipelines.stores import init_stores

    try:
        where = init_stores(args.warehouse)
    except Exception as exc:  # any store error: one line, non-zero
        print(f"error: could not initialise the stores: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"stores ready: Dagster instance in {where['dagster_home']}, MLflow at {where['mlflow']}")
    return 0


def cmd_recover(args) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve()))
    from dagster import DagsterInstance

    from pipelines.recovery import recover
    from resources.tracking import Tracking

    recovered = recover(DagsterInstance.get(), tracking=Tracking(warehouse_root=str(Path(args.warehouse).resolve())))
    if not recovered:
        print("no dead runs: nothing holds a pool slot it should not")
    return 0


def cmd_query(args) -> int:
    try:
        statements = duckdb.extract_statements(args.sql)
    except duckdb.Error:
        statements = [args.sql]  # not SQL duckdb can split: the query says why
    if len(statements) > 1:
        print(f"error: reprolab query runs one SQL statement, got {len(statements)}: run them one at a time",
              file=sys.stderr)
        return 2
    try:
        print_frame(query(args.warehouse, args.sql), args.format)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_tables(args) -> int:
    try:
        print_frame(list_views(args.warehouse), args.format)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_catalog(args) -> int:
    root = Path(args.warehouse).resolve()
    if not root.is_dir():
        print(f"error: no warehouse at {root}: materialize something first (make demo) or pass --warehouse",
              file=sys.stderr)
        return 2
    try:
        report = refresh_catalog(root)
    except (OSError, duckdb.Error) as exc:
        print(f"error: cannot rebuild the catalog in {root}: {exc}", file=sys.stderr)
        return 2
    for path, why in report.warnings.items():
        print(f"  warning: {why}: {path}", file=sys.stderr)
    print(f"catalog rebuilt: {len(report.views)} views in {Path(args.warehouse).resolve() / 'catalog.duckdb'}")
    for table, err in report.errors.items():
        print(f"  skipped {table}: {err}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_report(args) -> int:
    from pipelines.report import build_report

    path = Path(args.out) if args.out else Path(args.warehouse) / "report" / "index.html"
    try:  # the page first: a refusal creates nothing
        page = build_report(args.warehouse)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    print(f"report written to {path.resolve()}")
    return 0


def cmd_mlflow_ui(args) -> int:
    from resources.tracking import UI_URL_ENV, Tracking, default_ui_url

    tracking = Tracking(warehouse_root=args.warehouse)
    tracking.setup_for_execution()  # creates the store (and fails clearly) before the server starts
    configured = urlparse(default_ui_url())
    port = args.port or configured.port or 5000
    if port != (configured.port or 5000):
        print(f"note: links in asset metadata point at {default_ui_url()}; set {UI_URL_ENV}="
              f"http://127.0.0.1:{port} before materializing to have them point here", file=sys.stderr)
    beside = Path(sys.executable).parent / "mlflow"  # the venv's mlflow, even when the venv is not on PATH
    # light on a laptop: one web worker, and no background job workers (MLflow's GenAI job runner)
    cmd = [str(beside) if beside.exists() else "mlflow", "server", "--backend-store-uri", tracking.resolved_tracking_uri,
           "--default-artifact-root", tracking.resolved_artifact_root, "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(" ".join(cmd), flush=True)
    os.execvp(cmd[0], cmd)
    return 0


def cmd_serve(args) -> int:
    from pipelines.serve import serve
    from resources.tracking import default_tracking_uri

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"error: --api-key-env {args.api_key_env}: that environment variable is not set", file=sys.stderr)
            return 2
    try:
        serve(args.model, tracking_uri=args.tracking_uri or default_tracking_uri(args.warehouse), host=args.host,
              port=args.port, device=args.device, name=args.name, api_key=api_key)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: cannot serve {args.model!r}: {exc}", file=sys.stderr)
        return 2
    return 0


def positive_int(text: str) -> int:
    """An argument that must be an integer >= 1 (--max-items)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def port_arg(text: str) -> int:
    """--port: a TCP port, 1-65535, refused at parsing (a server would otherwise print one port and bind another)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (an integer from 1 to 65535)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a refused argument said in one line (exit status 2) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reprolab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=default_warehouse_root(),
                        help="warehouse root (default: $REPROLAB_WAREHOUSE or ./warehouse)")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the main job through the instance in $DAGSTER_HOME")
    d.add_argument("--verbose", action="store_true", help="Dagster's full event log on the console")
    d.add_argument("--config", action="append", metavar="FILE",
                   help="a Dagster run config (YAML) merged over the defaults, e.g. resources or an asset's config; "
                        "repeatable (later files win); e.g. deploy/run-config/cuda-switches-on-cpu.yaml")
    d.set_defaults(func=cmd_demo)
    q = sub.add_parser("query", help="one read-only SQL statement over the catalog (several are refused)")
    q.add_argument("sql")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.set_defaults(func=cmd_query)
    t = sub.add_parser("tables", help="list the catalog's views")
    t.add_argument("--format", choices=("table", "csv", "json"), default="table")
    t.set_defaults(func=cmd_tables)
    sub.add_parser("summary", help="what the warehouse holds").set_defaults(func=cmd_summary)
    sub.add_parser("init", help="create the Dagster and MLflow stores once, under a lock").set_defaults(func=cmd_init)
    sub.add_parser("recover", help="fail runs whose worker died and free their pool slots").set_defaults(
        func=cmd_recover)
    sub.add_parser("catalog", help="rebuild catalog.duckdb from the Parquet files").set_defaults(func=cmd_catalog)
    r = sub.add_parser("report", help="build the static HTML report from the catalog")
    r.add_argument("--out", default=None, help="output file (default: <warehouse>/report/index.html)")
    r.set_defaults(func=cmd_report)
    m = sub.add_parser("mlflow-ui", help="open the MLflow UI on the tracking store")
    m.add_argument("--port", type=port_arg, default=None,
                   help="default: the port of $REPROLAB_MLFLOW_UI_URL (where metadata links point), else 5000")
    m.set_defaults(func=cmd_mlflow_ui)
    s = sub.add_parser("serve", help="serve a chat model behind an OpenAI-compatible HTTP API")
    s.add_argument("model", help="models:/<name>@<alias>, models:/<name>/<version>, runs:/<id>/model or a "
                                 "checkpoint directory")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    s.add_argument("--port", type=port_arg, default=8000, help="TCP port, 1-65535 (default: 8000)")
    s.add_argument("--name", default=None, help=NAME_HELP)
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    s.add_argument("--tracking-uri", default=None, help="MLflow store (default: the warehouse's)")
    s.add_argument("--api-key-env", default=None, help="require the key in this environment variable as a bearer token")
    s.set_defaults(func=cmd_serve)
    e = sub.add_parser("evaluate", help="run the safety battery against an OpenAI-compatible endpoint")
    e.add_argument("--base-url", required=True, help="the endpoint, e.g. http://127.0.0.1:8000/v1")
    e.add_argument("--model", default=None, help="model id (default: the first one the endpoint lists)")
    e.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    e.add_argument("--max-tokens", type=int, default=64, help="max tokens per answer")
    e.add_argument("--regurgitation-max-tokens", type=int, default=64,
                   help="max tokens per answer to a regurgitation item (must exceed the 12-word match threshold)")
    e.add_argument("--budget", default="medium", type=budget_arg,
                   help="reasoning budget: a token count or low / medium / high (sent as reasoning_budget or "
                        "reasoning_effort)")
    e.add_argument("--seed", type=int, default=0, help="sampling seed sent with every request, and of the --max-items sample")
    e.add_argument("--benchmark", action="append", metavar="FILE",
                   help="a local XSTest / StrongREJECT / SimpleQA / BBQ file (or BBQ folder) to run beside the "
                        "suite, in its published format; repeatable")
    e.add_argument("--max-items", type=positive_int, default=None, metavar="N",
                   help="ask at most N requests of each of the suite's evaluations (refusal, jailbreak, "
                        "hallucination, bias, hierarchy, regurgitation; a jailbreak request with all 8 family "
                        "wrappings, as goodness@0.1 needs) and N items of each --benchmark file: a sample seeded by "
                        "--seed; default: every eval item (the summary says how many were asked)")
    e.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from resources.profiles import SettingError, UnknownProfileError, current_profile

    args = build_parser().parse_args(argv)
    try:
        if args.command not in PROFILE_FREE_COMMANDS:
            current_profile()  # a misspelt profile is refused before the command does anything
        return args.func(args)
    except SettingError as exc:  # a REPROLAB_* variable misspelt: one line, not a traceback
        hint = " (set REPROLAB_PROFILE to one of them; unset, it is demo)" if isinstance(exc, UnknownProfileError) else ""
        print(f"reprolab {args.command}: {exc}{hint}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `reprolab query ... | head`: the reader left; stop quietly, as CLI tools do
        _silence_stdout()
        return 128 + 13  # SIGPIPE's exit status, as a shell reports a tool killed by it


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (an in-process caller's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
