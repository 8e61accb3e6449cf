#!/usr/bin/env bash
# ONE prepared run on a rented H100/H200 (no network there): install the wheels carried in .whl/,
# build the full-size AudioLDM2 with random weights from .whl/reference/audioldm2, run the engine
# and batch-invariance benchmarks at full size and print their tables. Needs bench/prepare_gpu.sh run beforehand, here.
# Results: $OUT/gpu.json, gpu.log, gpu-invariance.json, gpu-invariance.log (OUT defaults to bench/results).
# Extra args go to the engine bench.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-bench/results}
mkdir -p "$OUT_DIR"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import sys, torch, transformers, diffusers; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"

# Full size, 5 s clips. Engine bench: build the model (~1 min), naive DDIM 150 x 3 clips (~30 s),
# engine DDIM 150 and DPM 25 at batch 64 (~20 s each with loading), then DPM 25 with a compiled UNet
# (compilation ~75-100 s in its warm-up). Then batch invariance in fp16 and fp32 (~1 min). Each
# writes its JSON after every case, so a cut-short run keeps what it measured. Whole script < 9 min.
set -o pipefail
quiet() { grep -v -e '^Loading' -e 'it/s]' -e 'FutureWarning' -e 'output = func'; }
timeout 400 python3 bench/engine_bench.py --device cuda --model full \
  --reference .whl/reference/audioldm2 --cache-dir /tmp/birdgen-bench \
  --json "$OUT_DIR/gpu.json" "$@" 2>&1 | quiet | tee "$OUT_DIR/gpu.log" || echo "engine bench: exit $?"
timeout 120 python3 bench/invariance_bench.py --device cuda --model full \
  --reference .whl/reference/audioldm2 --cache-dir /tmp/birdgen-bench \
  --json "$OUT_DIR/gpu-invariance.json" 2>&1 | quiet | tee "$OUT_DIR/gpu-invariance.log" || echo "invariance bench: exit $?"
