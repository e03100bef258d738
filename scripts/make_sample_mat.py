#!/usr/bin/python3
"""Makes data/mat/: the bundled sample for `h5ml signals import` (and `make demo`).

A bearing test rig as MATLAB users keep it: one sub-directory per fault type (the names the
original tools use), one .mat file (MATLAB v5, as scipy.io.savemat writes) per recording,
holding the vibration signal (4096 samples at 20480 Hz, float32), the sampling rate and a
note. Deterministic: the same files every run.
"""
import os
import sys

import numpy as np
import scipy.io

RATE = 20480
N = 4096
FAULTS = {  # name: (harmonics of the shaft speed, amplitudes)
    "sain": ([1], [0.1]),
    "desequilibre": ([1], [1.0]),
    "desalignement": ([2, 3], [0.6, 0.3]),
    "jeu": ([0.45, 1, 2], [0.5, 0.3, 0.2]),
}


def main(out):
    rng = np.random.default_rng(20480)
    t = np.arange(N) / RATE
    for name, (harm, amp) in FAULTS.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for k in range(4):
            speed = 60 * (1 + rng.uniform(-0.1, 0.1))
            x = sum(a * np.sin(2 * np.pi * h * speed * t + rng.uniform(0, 2 * np.pi)) for h, a in zip(harm, amp))
            x = x + 0.05 * np.sin(2 * np.pi * 50 * t) + rng.normal(0, 0.05, N)
            scipy.io.savemat(os.path.join(d, "%s_%02d.mat" % (name, k + 1)),
                             {"vibration": x.astype(np.float32), "fs": float(RATE),
                              "note": "rig A, %s, run %d" % (name, k + 1)}, format="5")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "mat"))
