#!/usr/bin/python3
"""Generate the MATLAB import fixtures in tests/data/mat/ (read by tests/test_matimport.c).

Run: /usr/bin/python3 scripts/make_mat_fixtures.py [tests/data/mat]
(needs numpy, scipy and h5py; Debian: python3-scipy python3-h5py). Deterministic: the
values are formulas the C test recomputes, chosen to be exact in binary (multiples of
1/1024 that fit in a float32 mantissa), so the test can compare with ==:

  g(i, k) = ((i * k) % 97 - 48) * 0.25 + i / 1024     for i = 0 .. n-1
  h(i)    = (i * 37) % 2001 - 1000                    (integer classes)

v5 files are written by scipy.io.savemat; v7.3 files (which scipy cannot write) by h5py,
laid out the way MATLAB does it: an HDF5 file with a 512-byte user block that starts with
the 128-byte MAT-file header, one dataset (or group, for structs) per variable carrying a
MATLAB_class attribute, dimensions reversed (a MATLAB 1 x n row is an HDF5 n x 1 dataset).
"""
import os
import shutil
import sys

import h5py
import numpy as np
import scipy.io


def g(n, k, dtype=np.float64):
    i = np.arange(n, dtype=np.int64)
    return (((i * k) % 97 - 48) * 0.25 + i / 1024.0).astype(dtype)


def h(n, dtype=np.int16):
    i = np.arange(n, dtype=np.int64)
    return ((i * 37) % 2001 - 1000).astype(dtype)


def save5(path, variables, compress=False):
    scipy.io.savemat(path, variables, format="5", oned_as="row", do_compression=compress)
    # scipy's header text carries the creation time: a fixed one keeps the files the same
    # from run to run.
    with open(path, "r+b") as f:
        f.write(b"MATLAB 5.0 MAT-file, written by scripts/make_mat_fixtures.py".ljust(116))


def write_v5(out):
    d = os.path.join(out, "v5")
    os.makedirs(d)
    save5(f"{d}/double_row.mat", {"sig": g(500, 3)})
    save5(f"{d}/single_col.mat", {"x": g(400, 5, np.float32).reshape(400, 1)})
    save5(f"{d}/int16.mat", {"counts": h(300)})
    save5(f"{d}/struct.mat", {
        "note": "bearing test rig",
        "s": {"fs": 20480.0, "data": g(300, 7), "name": "bearing"},
    })
    # Several candidates: b (800 x float32) must win. m has more elements but is a matrix,
    # z is complex, flag is logical, cl is a cell and arr is a 1x2 struct array: all of
    # them larger than b and all excluded.
    arr = np.zeros((1, 2), dtype=[("data", object)])
    arr[0, 0]["data"] = g(900, 1)
    arr[0, 1]["data"] = g(900, 2)
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = g(1200, 3)
    save5(f"{d}/several.mat", {
        "a": g(100, 1),
        "b": g(800, 2, np.float32),
        "c": h(200, np.int32),
        "fs": 20480.0,
        "label": "jeu",
        "m": g(1600, 4).reshape(40, 40),
        "z": g(1000, 5) + 1j * g(1000, 6),
        "flag": (np.arange(2000) % 3 == 0),
        "cl": cell,
        "arr": arr,
    }, compress=True)
    save5(f"{d}/charonly.mat", {"a": "hello", "s": {"name": "x"}})
    save5(f"{d}/complex.mat", {"sig": g(100, 1) + 1j * g(100, 2)})
    save5(f"{d}/matrix.mat", {"sig": g(12, 1).reshape(3, 4)})
    save5(f"{d}/empty.mat", {"sig": np.zeros((1, 0))})
    save5(f"{d}/novars.mat", {})


def write_v4(out):
    d = os.path.join(out, "v4")
    os.makedirs(d)
    scipy.io.savemat(f"{d}/double.mat", {"sig": g(256, 11)}, format="4", oned_as="row")


def write_bad(out):
    """Not MAT-files, and MAT-files cut short (v5 plain and compressed, v4, v7.3): made
    from the files above, so write_bad runs last."""
    d = os.path.join(out, "bad")
    os.makedirs(d)
    with open(f"{d}/notmat.mat", "w") as f:
        f.write("this is a text file, not a MATLAB file\n" * 8)
    for src, dst, size in (("v5/double_row.mat", "truncated.mat", 200),
                           ("v5/several.mat", "truncated_z.mat", 3000),
                           ("v4/double.mat", "truncated4.mat", 1000),
                           ("v73/h5py.mat", "truncated73.mat", 6000)):
        with open(os.path.join(out, src), "rb") as f:
            head = f.read(size)
        with open(os.path.join(d, dst), "wb") as f:
            f.write(head)


def mat73_header():
    text = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Jan  1 00:00:00 2000 "
            b"HDF5 schema 1.00 .")
    # 116 bytes of text, 8 bytes of subsystem data offset, version 0x0200, endian 'IM'
    return text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"


def set_matlab_class(obj, matlab_class):
    """MATLAB writes MATLAB_class as a fixed-length NULLTERM string exactly as long as the
    text (no room for the NUL); readers such as libmatio rely on that padding: h5py's
    default for np.bytes_ (NULLPAD) would be cut to "doubl" on conversion."""
    text = matlab_class.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(text))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    # Written with the file type as the memory type, so no conversion trims the text.
    attr = h5py.h5a.create(obj.id, b"MATLAB_class", tid, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(text, dtype=f"S{len(text)}"), mtype=tid)


def set_matlab_fields(group, names):
    """MATLAB lists a struct's fields in MATLAB_fields, a vlen sequence of 1-character
    strings per name (libmatio takes the fields from it: without it, it finds only some).
    MATLAB's strings are NULLTERM, these are h5py's NULLPAD: h5py cannot write vlen
    NULLTERM 1-character strings without a conversion that empties them, and libmatio
    reads the names from either."""
    data = np.empty(len(names), dtype=h5py.vlen_dtype(np.dtype("S1")))
    for k, name in enumerate(names):
        data[k] = np.frombuffer(name.encode("ascii"), dtype="S1")
    group.attrs.create("MATLAB_fields", data)


def h5_var(parent, name, matlab_shape, values, matlab_class, **attrs):
    """A MATLAB array: stored column-major, so HDF5 sees the reversed shape."""
    data = np.asarray(values).reshape(matlab_shape, order="F").T
    ds = parent.create_dataset(name, data=data)
    set_matlab_class(ds, matlab_class)
    for key, val in attrs.items():
        ds.attrs[key] = val
    return ds


def write_v73(out):
    d = os.path.join(out, "v73")
    os.makedirs(d)
    path = f"{d}/h5py.mat"
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        h5_var(f, "sig", (1, 600), g(600, 13), "double")
        h5_var(f, "x", (400, 1), g(400, 17, np.float32), "single")
        h5_var(f, "m", (3, 4), g(12, 1), "double")
        label = np.frombuffer("outer race".encode("ascii"), dtype=np.uint8).astype(np.uint16)
        h5_var(f, "label", (1, label.size), label, "char", MATLAB_int_decode=np.int32(2))
        st = f.create_group("st")
        set_matlab_class(st, "struct")
        set_matlab_fields(st, ["data", "fs"])
        h5_var(st, "data", (1, 250), h(250), "int16")
        h5_var(st, "fs", (1, 1), np.array([20480.0]), "double")
    with open(path, "r+b") as f:
        f.write(mat73_header())


def write_tree(out, name, classes):
    """One sub-directory per class, two small v5 files each; k makes every signal distinct."""
    for c, (sub, files) in enumerate(classes):
        d = os.path.join(out, name, sub)
        os.makedirs(d)
        for j, fname in enumerate(files):
            save5(os.path.join(d, fname), {"sig": g(64, 10 * (c + 1) + j)})
    with open(os.path.join(out, name, classes[0][0], "notes.txt"), "w") as f:
        f.write("not a .mat file: ignored by the listing\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "mat")
    for sub in ("v5", "v4", "bad", "v73", "tree", "tree_custom"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    write_v5(out)
    write_v4(out)
    write_v73(out)
    # k = 10 * (position in this list + 1) + file index: sain 10, 11; jeu 20, 21; ...
    write_tree(out, "tree", [("sain", ["s1.mat", "s2.mat"]),
                             ("jeu", ["j1.mat", "j2.MAT"]),
                             ("cavitation", ["c1.mat", "c2.mat"])])
    write_tree(out, "tree_custom", [("healthy", ["h1.mat", "h2.mat"]),
                                    ("inner_race", ["r1.mat", "r2.mat"])])
    write_bad(out)


if __name__ == "__main__":
    main()
