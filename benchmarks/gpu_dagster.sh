#!/usr/bin/env bash
# Materialize one slice of the graph THROUGH DAGSTER on the borrowed GPU machine (nvidia-h200: Python 3.12 with
# torch, transformers, pandas, pyarrow ... but no Dagster, MLflow, DuckDB or Great Expectations, and no network).
# Run from the repository root there, with the wheels of benchmarks/device_wheels.sh carried in .whl/:
#
#     bash benchmarks/gpu_dagster.sh                               # the default selection, gpu profile, CUDA
#     GROUP=naf bash benchmarks/gpu_dagster.sh                      # a group and everything upstream of it
#     SELECT='+key:lm_facts_medium' bash benchmarks/gpu_dagster.sh  # any Dagster selection string (no commas)
#     QUERY='SELECT * FROM findings' GROUP=naf bash benchmarks/gpu_dagster.sh  # and print that query's rows
#     PROFILE=tiny DEVICE=cpu PYTHON=/tmp/devsim/bin/python WHEELS=/tmp/whl311 SITE=/tmp/site311 \
#         OUT=/tmp/out bash benchmarks/gpu_dagster.sh               # the CPU rehearsal in a venv like the image
#
# It installs the wheels into $SITE (/tmp/site) with --no-deps, reports any requirement of theirs the image does
# not meet, starts a fresh DAGSTER_HOME and warehouse under /tmp, runs `dagster asset materialize -m
# pipelines.definitions` (the lab's code location; the multiprocess executor, so each step is its own process and
# CUDA is first touched inside the step) under `timeout $TIMEOUT`, then prints each step's wall time from the
# Dagster event log and rows from the DuckDB catalog, and writes gpu_dagster.md (that summary) and gpu_dagster.log
# (Dagster's full log) under $OUT (if set) or benchmarks/results/. Exit status: the materialization's.
#
# Why this selection by default: facts_world, facts_documents, facts_tokenizer (the corpora room's facts side)
# and lm_facts_small with its curve (the lm room's smallest gpu-profile model: d_model 256, 4 layers, context
# 256, 5000 steps of 64 sequences = 82M tokens, bf16 autocast + torch.compile on CUDA, registered in MLflow).
# It is the smallest slice that exercises the CUDA training path end to end (corpora -> tokenizer in MLflow ->
# training on the GPU -> model registered -> tables in DuckDB, checks through Great Expectations). Estimate on one
# H200: corpora ~35 s (measured on this project's 2-core machine at the gpu profile: 66,060 documents, the
# word-level tokenizer, the documents' GX check), then the training step: ~10 s of process start, torch import and
# tokenizing, ~30 s of torch.compile, 5000 steps at ~4-8 ms (launch-bound at this width) = 20-40 s, evaluations
# and MLflow logging ~10 s; about 2 min for the run, under the default TIMEOUT of 240 s, and ~30 s more for the
# wheels, the stores and the summary. The whole lm group is far larger at gpu sizes (the 124M-parameter code model
# alone trains on 164M tokens: ~6 min), and so is every study group (several models of thousands of steps each).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
PROFILE=${PROFILE:-gpu}
DEVICE=${DEVICE:-auto}
TIMEOUT=${TIMEOUT:-240}
RESULTS=${OUT:-benchmarks/results}
DEFAULT_SELECT='+key:lm_facts_small or key:lm_facts_small_curve'
USER_INPUTS='tag:"reprolab/input"="user"+'  # assets that read a user's files: they need a path set first
if [ -n "${GROUP:-}" ]; then
    SELECT="+group:$GROUP and not $USER_INPUTS"
else
    SELECT=${SELECT:-$DEFAULT_SELECT}
fi
CONFIG='{}'
[ "$DEVICE" = auto ] || CONFIG="{\"resources\": {\"compute\": {\"config\": {\"device\": \"$DEVICE\"}}}}"
CONFIG=${RUN_CONFIG:-$CONFIG}  # any run config as JSON, e.g. '{"resources": {"compute": {"config": {"compile": "on"}}}}'
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_dagster.log"
SUMMARY="$RESULTS/gpu_dagster.md"
export PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 GX_ANALYTICS_ENABLED=false  # no network there: never wait on a connection that cannot open

# 1. the carried wheels, without dependencies (the image has the rest)
if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: no wheels in $WHEELS: run benchmarks/device_wheels.sh here first and carry .whl" >&2; exit 2
fi
start=$(date +%s)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl 2>&1 | grep -v "Running pip as the 'root' user"
[ -f "$SITE/dagster/__init__.py" ] || { echo "error: installing $WHEELS into $SITE failed" >&2; exit 2; }
echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE in $(( $(date +%s) - start )) s"
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"

# 2. what the image holds against what the carried packages ask for (reported, not fatal: nothing the graph
#    runs may import the package concerned)
"$PY" - "$SITE" <<'EOF'
import importlib.metadata as md
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

site = sys.argv[1]
carried = {canonicalize_name(d.metadata["Name"]) for d in md.distributions(path=[site])}
problems = []
for dist in md.distributions(path=[site]):
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{dist.metadata['Name']} needs {req}: not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            where = "carried" if canonicalize_name(req.name) in carried else "the image's"
            problems.append(f"{dist.metadata['Name']} needs {req}: {have} ({where})")
import torch

versions = ", ".join(f"{name} {md.version(name)}" for name in ("transformers", "numpy", "pandas", "pyarrow",
                                                               "scikit-learn", "scipy", "matplotlib"))
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), "
      f"{versions}; {len(carried)} carried packages")
print("requirements of the carried packages not met:" if problems else
      "every requirement of the carried packages is met")
for problem in sorted(problems):
    print("  " + problem)
EOF

# 3. a fresh instance and warehouse, and the run
WORK=$(mktemp -d /tmp/reprolab-gpu-dagster.XXXXXX)
export DAGSTER_HOME="$WORK/dagster_home" REPROLAB_WAREHOUSE="$WORK/warehouse" REPROLAB_PROFILE=$PROFILE
mkdir -p "$DAGSTER_HOME" && cp dagster_home/dagster.yaml "$DAGSTER_HOME/"
echo "profile $PROFILE, selection: $SELECT, run config: $CONFIG"
echo "DAGSTER_HOME=$DAGSTER_HOME REPROLAB_WAREHOUSE=$REPROLAB_WAREHOUSE"
"$PY" -m pipelines.cli init || exit 2
start=$(date +%s)
timeout -k 15 "$TIMEOUT" "$PY" -m dagster asset materialize -m pipelines.definitions --select "$SELECT" \
    --config-json "$CONFIG" >"$LOG" 2>&1
status=$?
wall=$(( $(date +%s) - start ))
grep -E "STEP_FAILURE|Error" "$LOG" | tail -n 20
echo "dagster asset materialize: exit $status in $wall s (limit $TIMEOUT s); Dagster's log: $LOG"

# 4. per-step wall times from the event log, and rows from the catalog
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
{
echo "# Dagster on ${gpu:-a machine without an NVIDIA GPU}"
echo
echo "profile \`$PROFILE\`, selection \`$SELECT\`, run config \`$CONFIG\`: exit $status in $wall s (limit $TIMEOUT s)"
echo
"$PY" - <<'EOF'
import dagster as dg

instance = dg.DagsterInstance.get()
runs = instance.get_runs(limit=1)
if not runs:
    raise SystemExit("(no run recorded)")
run = runs[0]
steps, assets = {}, {}
for entry in instance.all_logs(run.run_id):
    event = entry.dagster_event
    if event is None or entry.step_key is None:
        continue
    step = steps.setdefault(entry.step_key, {"start": None, "end": None, "status": "did not finish"})
    if event.event_type_value == "STEP_START":
        step["start"] = entry.timestamp
    elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
        step["end"], step["status"] = entry.timestamp, event.event_type_value.removeprefix("STEP_").lower()
    elif event.event_type_value == "ASSET_MATERIALIZATION":
        assets.setdefault(entry.step_key, []).append(event.asset_key.to_user_string())
print(f"run `{run.run_id}`: {run.status.value}\n")
print("| step | status | seconds | assets materialized |\n|---|---|---|---|")
for key, s in sorted(steps.items(), key=lambda item: item[1]["start"] or float("inf")):
    seconds = f"{s['end'] - s['start']:.1f}" if s["start"] and s["end"] else "-"
    print(f"| {key} | {s['status']} | {seconds} | {', '.join(assets.get(key, [])) or '-'} |")
EOF
echo
echo '```'
"$PY" -m pipelines.cli summary 2>&1 | head -n 40
if [ "$SELECT" = "$DEFAULT_SELECT" ]; then
    "$PY" -m pipelines.cli query "SELECT parameters, final_val_loss, tokens_seen, round(train_seconds, 1) AS \
train_seconds, hardware FROM lm.lm_facts_small" 2>&1
    "$PY" -m pipelines.cli query "SELECT step, tokens, round(train_loss, 3) AS train_loss, round(val_loss, 3) AS \
val_loss, round(tokens_per_s) AS tokens_per_s FROM lm.lm_facts_small_curve WHERE NOT isnan(val_loss) \
ORDER BY step DESC LIMIT 5" 2>&1
fi
[ -z "${QUERY:-}" ] || "$PY" -m pipelines.cli query "$QUERY" 2>&1 | head -n 30
echo '```'
} | tee "$SUMMARY"
exit "$status"
