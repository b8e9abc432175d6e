#!/usr/bin/env bash
# The GPU check: the whole test suite (accelerator auto picks the GPU), the training benchmark of both workflows
# (the fit against the plain loops and the CUDA-graph limit loop), and the full reference runs of seeds 42, 1 and
# 2. Everything lands in $OUT (default gpu_check/): gpu.txt, pytest.txt, the bench's tables and JSON, runs.tgz with
# each run's report and metrics, and status.txt with each part's exit status.
usage() {
    cat <<'EOF'
usage: bash scripts/gpu_check.sh [all|suite|bench|runs]

On any machine with an NVIDIA GPU and the project installed (make test has made .venv, or PYTHON names a Python
that imports the project). The runs read the datasets from DATA_DIR (or download them, given a network).
  suite   the test suite on the GPU (at most 300 s)
  bench   bench/train_throughput.py for both workflows (at most 150 s each)
  runs    the reference fit of both workflows, seeds 42, 1 and 2 (at most 150 s each)
Results in $OUT (default gpu_check/); SUITE_S, BENCH_S and RUN_S change the time limits.
EOF
}
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
case $part in
    all | suite | bench | runs) ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
    echo "error: no NVIDIA GPU here (nvidia-smi is missing or finds none): this check is for a GPU machine." >&2
    exit 2
fi
if ! "$PYTHON" -c "import torch, fashion_cnn.train, sst2_bilstm.train; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "error: $PYTHON cannot import the project, or its torch sees no GPU: run make test first, or set PYTHON." >&2
    exit 2
fi
out=${OUT:-gpu_check}
mkdir -p "$out"
: > "$out/status.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
"$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt"

# Runs a step under a time limit and records its exit status (124: it ran out of time).
step() {
    local name=$1 limit=$2 log=$3
    shift 3
    timeout "$limit" "$@" > "$log" 2>&1
    local status=$?
    echo "$name: exit $status$([[ $status == 124 ]] && echo " (over $limit s)")" >> "$out/status.txt"
}

if [[ $part == all || $part == suite ]]; then
    step suite "${SUITE_S:-300}" "$out/pytest.txt" "$PYTHON" -m pytest -q -p no:cacheprovider
fi

if [[ $part == all || $part == bench ]]; then
    for workflow in fashion_cnn sst2_bilstm; do
        batches=$([ "$workflow" = sst2_bilstm ] && echo 600 || echo 0)
        step "bench $workflow" "${BENCH_S:-150}" "$out/bench_$workflow.txt" "$PYTHON" bench/train_throughput.py \
            --workflow "$workflow" --accelerator cuda --batches "$batches" --repeats 3 --no-progress-bar --output "$out"
    done
fi

if [[ $part == all || $part == runs ]]; then
    for workflow in fashion_cnn sst2_bilstm; do
        for seed in 42 1 2; do
            step "run $workflow seed $seed" "${RUN_S:-150}" "$out/run_${workflow}_$seed.txt" "$PYTHON" -m "$workflow.train" \
                fit --trainer.default_root_dir "$out/runs/$workflow" --seed_everything "$seed" \
                --trainer.enable_progress_bar false
        done
    done
    "$PYTHON" - "$out/runs" > "$out/runs_summary.txt" 2>&1 <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/version_*/metrics.json")):
    metrics = json.loads(path.read_text())
    print(path.parent, "seed", metrics.get("seed"), "test accuracy", metrics["test"]["accuracy"])
PY
    tar czf "$out/runs.tgz" -C "$out" --exclude='*.ckpt' --exclude='events.out.*' runs && rm -rf "$out/runs"
fi
tail -n 3 "$out"/pytest.txt "$out"/bench_*.txt 2>/dev/null
cat "$out/status.txt"
! grep -qv ": exit 0$" "$out/status.txt"
