#!/bin/sh
# Regenerates the seed corpora in fuzz/corpus/ (committed; small files):
#   atoms_reader, signals_reader, extxyz, json_meta  made by fuzz_make_corpus (make_corpus.c)
#   extxyz                                           plus the first frames of data/sample.xyz
#   matimport                                        the bundled MATLAB samples (data/mat, one
#                                                    per class) and tests/data/mat (v4, v5, v7.3)
# Usage: fuzz/make_corpus.sh [BUILD_DIR]  (default build-fuzzreplay; built if needed)
set -eu
cd "$(dirname "$0")/.."
B=${1:-build-fuzzreplay}
if [ ! -x "$B/fuzz/fuzz_make_corpus" ]; then
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DH5ML_PYTHON=OFF >/dev/null
  cmake --build "$B" -j2 --target fuzz_make_corpus >/dev/null
fi
C=fuzz/corpus
rm -rf "$C/atoms_reader" "$C/signals_reader" "$C/json_meta" "$C/extxyz" "$C/matimport"
"$B/fuzz/fuzz_make_corpus" "$C"
# Two frames of the bundled sample (32 atoms each).
awk 'NR==1{n=$1} NR<=2*(n+2)' data/sample.xyz > "$C/extxyz/sample2.xyz"
# Files as h5py writes them (HDF5's oldest format, contiguous or chunked without h5ml's
# layout): the readers take files "written by h5py with the same schema" too.
if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
  /usr/bin/python3 - "$C" <<'PY'
import sys
import h5py
import numpy as np

c = sys.argv[1]
bool_t = np.bool_

def atoms(path, **kw):
    z = np.array([1, 8, 1, 6, 1], dtype=np.int64)
    splits = np.array([0, 3, 5], dtype=np.int64)
    pos = np.arange(15, dtype=np.float64).reshape(5, 3) * 0.5
    with h5py.File(path, "w") as f:
        f.create_dataset("structures/atomic_numbers", data=z, **kw)
        f.create_dataset("structures/atomic_numbers_splits", data=splits)
        f.create_dataset("structures/positions", data=pos, **kw)
        f.create_dataset("structures/cells", data=np.eye(3)[None].repeat(2, 0) * 5)
        f.create_dataset("structures/pbc", data=np.array([[1, 1, 1], [0, 0, 0]], dtype=bool_t))
        f.create_dataset("labels/energy", data=np.array([-1.5, 2.25]))
        f.create_dataset("labels/forces", data=(pos * 0.1).astype(np.float32), **kw)
        f.create_dataset("labels/forces_splits", data=splits)
        f.create_dataset("labels/stress", data=np.zeros((2, 6)))
        f.create_dataset("labels/stress_mask", data=np.array([True, False]))
        f.create_dataset("labels/structure_indices", data=np.arange(2, dtype=np.int64))
        f.create_dataset("labels/info", data=np.array(['{"a":1}', ""], dtype=object), dtype=h5py.string_dtype())
        f.create_group("metadata").attrs["num_structures"] = 2

atoms(f"{c}/atoms_reader/h5py_contiguous.h5")
atoms(f"{c}/atoms_reader/h5py_chunked_gzip.h5", chunks=True, compression="gzip")
with h5py.File(f"{c}/signals_reader/h5py_flat.h5", "w") as f:
    f["signals"] = (np.arange(48, dtype=np.float32) / 7).reshape(6, 8)
    f["labels"] = np.array([0, 1, 2, 0, 1, 2], dtype=np.int64)
    f["metadata"] = np.array(['{"i":%d}' % i for i in range(6)], dtype=object).astype(h5py.string_dtype())
    f.attrs["num_signals"] = 6
with h5py.File(f"{c}/signals_reader/h5py_split_chunked.h5", "w") as f:
    for k, name in enumerate(["train", "val", "test"]):
        g = f.create_group(name)
        g.create_dataset("signals", data=np.full((3 - k, 8), k, dtype=np.float32), chunks=(1, 8), compression="gzip")
        g["labels"] = np.arange(3 - k, dtype=np.int64)
        g["indices"] = np.arange(3 - k, dtype=np.int64) + [0, 3, 5][k]
PY
fi
mkdir -p "$C/matimport"
for d in data/mat/*/; do
  f=$(ls "$d"*.mat | head -n 1)
  cp "$f" "$C/matimport/$(basename "$d")_$(basename "$f")"
done
for f in tests/data/mat/v4/*.mat tests/data/mat/v5/*.mat tests/data/mat/v73/*.mat tests/data/mat/bad/*.mat; do
  cp "$f" "$C/matimport/$(basename "$(dirname "$f")")_$(basename "$f")"
done
cp tests/data/mat/tree/sain/s1.mat "$C/matimport/tree_s1.mat"
du -sh "$C"/* | sed 's/^/corpus: /'
