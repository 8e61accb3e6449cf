#!/usr/bin/env bash
# ONE prepared run on a rented H100/H200 (no network there): install the wheels carried in .whl/,
# build the full-size AudioLDM2 with random weights from .whl/reference/audioldm2, run the engine
# benchmark at full size and print the table. Needs bench/prepare_gpu.sh run beforehand, here.
# Results: $OUT/gpu.json and $OUT/gpu.log (OUT defaults to bench/results). Extra args go to the bench.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-bench/results}
mkdir -p "$OUT_DIR"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import sys, torch, transformers, diffusers; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"

# Full size, 5 s clips: naive DDIM 150 x 3 clips (~30 s), engine DDIM 150 batch 64 (~15 s),
# engine DPM 25 batch 64 x 128 clips (~5 s), plus ~2 min to build and load: well under 8 minutes.
set -o pipefail
timeout 470 python3 bench/engine_bench.py --device cuda --model full \
  --reference .whl/reference/audioldm2 --cache-dir /tmp/birdgen-bench \
  --json "$OUT_DIR/gpu.json" "$@" 2>&1 | grep -v -e '^Loading' -e 'it/s]' | tee "$OUT_DIR/gpu.log"
