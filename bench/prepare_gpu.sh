#!/usr/bin/env bash
# Run HERE (the dev machine, which reaches PyPI) before bench/gpu_bench.sh: fills .whl/ (git-ignored)
# with what the GPU image lacks, as Python 3.12 manylinux wheels, plus the AudioLDM2 reference configs.
# The GPU image already has torch, transformers, tokenizers, safetensors, accelerate, pyarrow, fsspec.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
REFERENCE=${BIRDGEN_REFERENCE:-$(git rev-parse --show-toplevel)/../shared/reference/audioldm2/audioldm2}

mkdir -p .git/info && { grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude; }
rm -rf .whl && mkdir -p .whl/reference
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  diffusers==0.42.1 soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12 \
  importlib_metadata==10.2.0 lazy-importer==0.1.0
cp -r "$REFERENCE" .whl/reference/audioldm2
du -sh .whl && ls .whl
