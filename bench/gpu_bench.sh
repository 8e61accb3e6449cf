#!/usr/bin/env bash
# ONE prepared run on a rented H100/H200 (no network there), in under 9 minutes including the wheel install.
# Needs bench/prepare_gpu.sh run beforehand, here. Steps, each with its own time limit:
#   1. install the wheels carried in .whl/ (~20 s)
#   2. smoke (bench/smoke.py, < 60 s): imports, the tiny model on CUDA, one batch at 2 steps; a failure
#      stops the script here with one "SMOKE FAILED ..." line, before any full-size device time is spent
#   3. build the full-size AudioLDM2 with random weights from .whl/reference/audioldm2 (cap 90 s)
#   4. the engine bench at full size, 5 s clips, real-plan prompts (bench/plan_prompts.csv) (cap 270 s; each
#      case cut off after 120 s, the compiled one after 170 s, paid for by 1 naive clip instead of 3): naive DDIM 150,
#      batched diffusers DPM 25 at batch 64, engine DDIM 150, engine DPM 25, end to end (ShardWorker), engine
#      DPM 25 compiled; fp16 reruns per case in its table
#   5. batch invariance in fp16 and fp32, the prompt cache cleared between them (cap 75 s)
#   6. both model families at full size, 5 s clips, DPM 10 steps, batch 16 (bench/renderer_bench.py: FLOPs,
#      kernels and seconds per clip, Stable Audio Open over AudioLDM2; its full-size build included, cap 150 s)
# Every JSON is rewritten after each case (engine bench) or dtype (invariance), so a cut-off run keeps what ran.
# Results: $OUT/gpu.json, gpu.log, gpu-invariance.json, gpu-invariance.log, gpu-renderers.json, gpu-renderers.log
# (OUT defaults to bench/results).
# Extra args go to the engine bench.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-bench/results}
mkdir -p "$OUT_DIR"
SCRIPT_START=$SECONDS

timeout 60 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import sys, torch, transformers, diffusers; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"

set -o pipefail
quiet() { grep -v -e '^Loading' -e 'it/s]' -e 'FutureWarning' -e 'output = func'; }
if ! timeout 60 python3 bench/smoke.py --device cuda --cache-dir /tmp/birdgen-bench 2>&1 | quiet | tee "$OUT_DIR/smoke.log"; then
  echo "smoke step failed or ran past 60 s (see $OUT_DIR/smoke.log): stopping, no full-size case was run"
  exit 1
fi
FULL=(--device cuda --model full --reference .whl/reference/audioldm2 --cache-dir /tmp/birdgen-bench)
timeout 90 python3 bench/engine_bench.py "${FULL[@]}" --build-only 2>&1 | quiet || { echo "full-size build: exit $?"; exit 1; }
timeout 270 python3 bench/engine_bench.py "${FULL[@]}" --case-cap 120 --compiled-case-cap 170 --naive-clips 1 \
  --json "$OUT_DIR/gpu.json" "$@" 2>&1 | quiet | tee "$OUT_DIR/gpu.log" || echo "engine bench: exit $?"
timeout 75 python3 bench/invariance_bench.py "${FULL[@]}" \
  --json "$OUT_DIR/gpu-invariance.json" 2>&1 | quiet | tee "$OUT_DIR/gpu-invariance.log" || echo "invariance bench: exit $?"
timeout 150 python3 bench/renderer_bench.py "${FULL[@]/--model/--audioldm2}" --stable-audio full \
  --duration 5 --steps 10 --batch 16 --json "$OUT_DIR/gpu-renderers.json" 2>&1 | quiet \
  | tee "$OUT_DIR/gpu-renderers.log" || echo "renderer bench: exit $?"
echo "gpu_bench.sh: $((SECONDS - SCRIPT_START)) s in all"
