#!/usr/bin/env bash
# One GPU session's worth of checks, about 10 minutes on one H100/H200: the GPU check of every study, then the
# training-throughput benchmark (124M shape first, then ~10M; plain and chunked loss against the minimal GPT).
# Each step has its own time limit, so a slow compile cannot eat the other's time; tables are printed at the
# end and written under $OUT (if set) or benchmarks/results/.
#
#     bash benchmarks/gpu_session.sh                  # on the GPU machine, from the repository root
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

start=$(date +%s)
# the Hugging Face layers and the chunked loss are timed by train_throughput.py below, so the check leaves them out.
# Two shards (every other part) run side by side, each with the whole budget, so that a slow compile early on cannot
# leave the later parts unrun; they share the GPU, so their rates are lower bounds (the estimate errs long).
for k in 1 2; do
    timeout 300 "$PY" benchmarks/gpu_check.py --device cuda --budget-s 270 --shard "$k/2" \
        --skip lm.train_hf_layers,lm.train_chunked --out "$RESULTS/gpu_check.$k.md" \
        > "$RESULTS/gpu_check.$k.log" 2>&1 &
    pids[$k]=$!
done
for k in 1 2; do wait "${pids[$k]}"; echo "gpu_check shard $k/2: exit $?"; done
cat "$RESULTS/gpu_check.1.log" "$RESULTS/gpu_check.2.log" > "$RESULTS/gpu_check.log"
# one table: the first shard's title and header, then both shards' rows
{ head -n 4 "$RESULTS/gpu_check.1.md"; tail -q -n +5 "$RESULTS/gpu_check.1.md" "$RESULTS/gpu_check.2.md"; } \
    > "$RESULTS/gpu_check.md" 2>/dev/null
echo "gpu_check (2 shards side by side): $(( $(date +%s) - start )) s"

start=$(date +%s)
timeout 270 "$PY" benchmarks/train_throughput.py --device cuda --shapes 124M,10M --chunked-loss 8192 \
    --out "$RESULTS/train_throughput_cuda.md" 2>&1 | tee "$RESULTS/train_throughput.log"
echo "train_throughput: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s"

for table in "$RESULTS/gpu_check.md" "$RESULTS/train_throughput_cuda.md"; do
    echo; echo "== $table"; cat "$table" 2>/dev/null || echo "(not written)"
done
echo
echo "Next, where Dagster is installed: .venv/bin/python benchmarks/gpu_profile_estimate.py --gpu-check $RESULTS/gpu_check.md"
echo "(the gpu profile's wall time per study from these measured throughputs; see README, Profiles)"
