#!/bin/sh
# The main job on the bundled sample: convert, inspect, verify, export, convert back, diff.
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
echo "demo files are in $OUT/"
ls -l "$OUT"
