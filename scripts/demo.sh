#!/bin/sh
# The main jobs on the bundled samples. Atomistic: convert, inspect, verify, export, convert
# back, diff, merge. Signals: generate a vibration data set, import the MATLAB sample, split,
# inspect, verify.
set -eu
H5ML=${1:-build/h5ml}
OUT=${DEMO_DIR:-build/demo}
mkdir -p "$OUT"
run() { echo "\$ $*"; "$@"; echo; }

run "$H5ML" convert data/sample.xyz -o "$OUT/sample.h5" -m source=demo -m teacher_model=EMT
run "$H5ML" inspect "$OUT/sample.h5"
run "$H5ML" verify "$OUT/sample.h5"
run "$H5ML" export "$OUT/sample.h5" -o "$OUT/sample_export.xyz"
run "$H5ML" convert "$OUT/sample_export.xyz" -o "$OUT/roundtrip.h5" -q
run "$H5ML" diff "$OUT/sample.h5" "$OUT/roundtrip.h5"
run "$H5ML" convert data/sample.xyz -o "$OUT/sample_lzf.h5" -c lzf
run "$H5ML" merge "$OUT/sample.h5" "$OUT/sample_lzf.h5" -o "$OUT/merged.h5"

run "$H5ML" signals generate -o "$OUT/vibration.h5" --per-class 20 --length 20480 --seed 42
run "$H5ML" inspect "$OUT/vibration.h5"
run "$H5ML" verify "$OUT/vibration.h5"
run "$H5ML" signals import data/mat -o "$OUT/rig_flat.h5" --flat
run "$H5ML" signals split "$OUT/rig_flat.h5" -o "$OUT/rig_split.h5" --ratios 0.5,0.25,0.25 --seed 1
run "$H5ML" inspect "$OUT/rig_split.h5"
run "$H5ML" verify "$OUT/rig_split.h5"
echo "demo files are in $OUT/"
ls -l "$OUT"
