#!/usr/bin/env bash
# The GPU figures of issues 22 and 26 in one prepared command, for a session
# that is lent an accelerator (an NVIDIA H100 / H200 whose image has JAX and
# no TensorFlow; nothing can be downloaded there). docs/benchmarks.md ("GPU:
# the prepared device run") says how to call it and where the figures go.
#
# Here, once (the wheels Keras 3 needs beyond that image, for its Python
# 3.12; /.whl/ is git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: \
#     --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# There (the device tool's `run`, carry [".whl"], timeout_s 600):
#   bash .ci/device_benchmarks.sh
#
# Stages, most important first, each under its own time limit so that a
# slow compile costs its stage only; everything each stage prints goes to
# $OUT/device.log as it runs, and each stage's JSON to $OUT (at most 8
# files come back):
#   1. issue 22: training step, mixed_bfloat16, batch 256, 224 px: ours
#      (resnet50, assemble_resnet50 with its whole recipe) against Keras'
#      ResNet50 JAX train step in the same process;
#   2. issue 26: inference of the cumulative Table 6 rows (M0 R50, M1 +D,
#      M2 +SK, M3 +BigLittle, M4 +BlurPool) at 256 px, batch 256, bfloat16;
#   3. the same in float32 (TF32): Assemble / R50 in bf16 against TF32;
#   4. the training step in float32, if time is left.
# SMOKE=1 runs every stage at toy sizes (any machine with JAX, for a check
# of the script itself: OUT defaults to ./device_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
LOG=$OUT/device.log
PY=${PY:-python3}
WORK=$(mktemp -d)

export PYTHONPATH=$PWD
if ! $PY -c "import keras" 2>/dev/null; then  # the wheels, where needed
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "No Keras here and no .whl/ carried: see the top of $0." >&2
        exit 1
    fi
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if [ "${SMOKE:-0}" = 1 ]; then
    SIZE=64; BATCH=4; STEPS=2; REPEATS=2; WARMUP=1; LIMIT=240
else
    SIZE=224; BATCH=256; STEPS=20; REPEATS=5; WARMUP=3; LIMIT=0
fi

stage() {  # stage NAME SECONDS COMMAND...: logged, limited, its JSON kept
    local name=$1 seconds=$2
    shift 2
    [ "$LIMIT" -gt 0 ] && seconds=$LIMIT
    echo "=== $name ($(date -u +%H:%M:%S), limit ${seconds}s): $*" | tee -a "$LOG"
    timeout "$seconds" "$@" --output_dir="$WORK/$name" 2>&1 \
        | tr '\r' '\n' | grep -v '^ *$' >>"$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$LOG"
    for f in "$WORK/$name"/*.json "$WORK/$name"/*.jsonl; do
        [ -f "$f" ] && cp "$f" "$OUT/$name.${f##*.}"
    done
}

{
    date -u
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    $PY -c 'import jax, keras; print("jax", jax.__version__, jax.devices());
print("keras", keras.__version__)'
} >>"$LOG" 2>&1

TRAIN="$PY -m tools.benchmark_training --presets=resnet50,assemble_resnet50
    --batch_size=$BATCH --image_size=$SIZE --warmup_steps=$WARMUP
    --repeats=$REPEATS --steps_per_repeat=$STEPS"
INFER="$PY -m tools.benchmark_throughput
    --preset=resnet50,table6_m1,table6_m2,table6_m3,table6_m4
    --image_size=$((SIZE + 32)) --batch_size=$BATCH --warmup=$WARMUP
    --runs=$REPEATS --steps=$STEPS"

# 560 s in all: the run's limit is 600 (three XLA compiles of train
# steps in the first stage, ten of forward passes in the next two).
stage train_bf16 300 $TRAIN --precisions=mixed_bfloat16
stage families_bf16 120 $INFER --dtype=bfloat16
stage families_tf32 90 $INFER --dtype=float32
stage train_fp32 50 $TRAIN --precisions=float32
echo "=== done $(date -u +%H:%M:%S)" | tee -a "$LOG"
rm -rf "$WORK"
