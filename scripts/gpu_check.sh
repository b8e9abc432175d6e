#!/usr/bin/env bash
# The GPU check: the whole test suite (accelerator auto picks the GPU), the training benchmark of both workflows
# (the fit against the plain loops and the CUDA-graph limit loop), and the full reference runs of seeds 42, 1 and
# 2. Everything lands in $OUT (default gpu_check/): pytest.txt, the bench's tables and JSON, and runs.tgz with each
# run's report and metrics. One part per call: suite, bench, runs.
#
#   bash scripts/gpu_check.sh [all|suite|bench|runs]            # on a GPU machine with the project installed
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
out=${OUT:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
"$python" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt"

if [[ $part == all || $part == suite ]]; then
    timeout 300 "$python" -m pytest -q -p no:cacheprovider > "$out/pytest.txt" 2>&1
    echo "pytest exit status $?" >> "$out/pytest.txt"
fi

if [[ $part == all || $part == bench ]]; then
    for workflow in fashion_cnn sst2_bilstm; do
        batches=$([ "$workflow" = sst2_bilstm ] && echo 600 || echo 0)
        timeout 150 "$python" bench/train_throughput.py --workflow "$workflow" --accelerator cuda --batches "$batches" \
            --repeats 3 --no-progress-bar --output "$out" > "$out/bench_$workflow.txt" 2>&1
    done
fi

if [[ $part == all || $part == runs ]]; then
    for workflow in fashion_cnn sst2_bilstm; do
        for seed in 42 1 2; do
            timeout 150 "$python" -m "$workflow.train" fit --trainer.default_root_dir "$out/runs/$workflow" \
                --seed_everything "$seed" --trainer.enable_progress_bar false > "$out/run_${workflow}_$seed.txt" 2>&1
        done
    done
    "$python" - "$out/runs" > "$out/runs_summary.txt" 2>&1 <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/version_*/metrics.json")):
    metrics = json.loads(path.read_text())
    print(path.parent, "seed", metrics.get("seed"), "test accuracy", metrics["test"]["accuracy"])
PY
    tar czf "$out/runs.tgz" -C "$out" --exclude='*.ckpt' --exclude='events.out.*' runs && rm -rf "$out/runs"
fi
tail -n 3 "$out"/pytest.txt "$out"/bench_*.txt 2>/dev/null
