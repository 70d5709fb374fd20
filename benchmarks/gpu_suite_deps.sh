#!/usr/bin/env bash
# Prepare .gpu_deps/ for one GPU-suite call on a lent device machine (its python3 is 3.12 with torch and
# torchvision but none of detectron2's stack, omegaconf, shapely or the COCO evaluators; it cannot reach
# a package registry). Run here, in the repository root, with the project's venv:
#   bash benchmarks/gpu_suite_deps.sh
# then run, carrying .gpu_deps (about 16 MB):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu_deps/whl/*.whl
#   && export PYTHONPATH=/tmp/site:$PWD/.gpu_deps/py:$PWD PYTHONUNBUFFERED=1
#   && timeout 560 python3 benchmarks/gpu_suite.py $OUT --only step,data,detection,coco,ddp 2>&1 | tee $OUT/log.txt
# The signal section (the GPU demo grid, budget 560 s) is a call of its own, timeout_s 600, the same two first
# lines and then:
#   && timeout 590 python3 benchmarks/gpu_suite.py $OUT --only signal 2>&1 | tee $OUT/log.txt
# It leaves gpu_suite.json, gpu_suite.md and signal/{report.md,results.md,grid_log.txt} under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SITE=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .gpu_deps && mkdir -p .gpu_deps/whl .gpu_deps/py
# Wheels for CPython 3.12 on x86-64 Linux (kornia for the data section's library comparison).
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu_deps/whl "pycocotools==$(version pycocotools)" \
    "faster-coco-eval==$(version faster-coco-eval)" "shapely==$(version shapely)" \
    "kornia==$(version kornia)" "kornia-rs==$(version kornia_rs)"
# Pure-Python packages (detectron2 here is its Python-only build), copied from this venv.
for pkg in detectron2 fvcore iopath yacs termcolor omegaconf antlr4 hydra pkg_resources; do
    cp -r "$SITE/$pkg" .gpu_deps/py/
done
find .gpu_deps/py -name __pycache__ -prune -exec rm -rf {} +
du -sh .gpu_deps
