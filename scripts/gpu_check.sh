#!/usr/bin/env bash
# The GPU check in one call (about 8 minutes on one H100): the whole test suite (accelerator auto picks the GPU),
# the training benchmark of both workflows, and both full reference runs. Everything lands in $OUT (default
# gpu_check/): pytest.txt, the bench's printed tables and JSON, and runs.tgz with each run's report and metrics.
#
#   bash scripts/gpu_check.sh                                   # on a GPU machine with the project installed
#   source .device/env.sh && bash scripts/gpu_check.sh          # this project's lent machines (shared/device)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
mkdir -p "$out"
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
"$python" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt"

timeout 300 "$python" -m pytest -q -p no:cacheprovider -x > "$out/pytest.txt" 2>&1
echo "pytest exit status $?" >> "$out/pytest.txt"

for workflow in fashion_cnn sst2_bilstm; do
    batches=$([ "$workflow" = sst2_bilstm ] && echo 600 || echo 0)
    timeout 150 "$python" bench/train_throughput.py --workflow "$workflow" --accelerator cuda --batches "$batches" \
        --steps-per-execution 1 8 --repeats 3 --no-progress-bar --output "$out" > "$out/bench_$workflow.txt" 2>&1
done

for workflow in fashion_cnn sst2_bilstm; do
    timeout 120 "$python" -m "$workflow.train" fit --trainer.default_root_dir "$out/runs/$workflow" \
        --trainer.enable_progress_bar false > "$out/run_$workflow.txt" 2>&1
done
tar czf "$out/runs.tgz" -C "$out" --exclude='*.ckpt' --exclude='events.out.*' runs && rm -rf "$out/runs"
tail -n 3 "$out"/pytest.txt "$out"/bench_*.txt
