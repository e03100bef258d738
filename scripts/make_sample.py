#!/usr/bin/python3
"""Generate data/sample.xyz: the bundled sample for `make demo` and the tests.

Labels come from ASE's EMT potential: periodic metal cells (rattled fcc supercells, with
stress) and molecules (rattled, no cell, no stress), written by ASE's own extxyz writer.
Deterministic (seed 20261121). Run: /usr/bin/python3 scripts/make_sample.py data/sample.xyz
"""
import sys

import numpy as np
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

rng = np.random.default_rng(20261121)


def labelled(atoms, with_stress):
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress() if with_stress else None
    results = dict(energy=energy, forces=forces)
    if with_stress:
        results["stress"] = stress
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def main(path):
    frames = []
    metals = [("Cu", 3.61), ("Al", 4.05), ("Ni", 3.52), ("Pd", 3.89), ("Ag", 4.09), ("Au", 4.08)]
    for k in range(200):
        sym, a = metals[k % len(metals)]
        rep = (2, 2, 2) if k % 4 else (3, 3, 3)
        atoms = bulk(sym, "fcc", a=a * rng.uniform(0.97, 1.03), cubic=True).repeat(rep)
        atoms.rattle(stdev=0.05, seed=int(rng.integers(1 << 30)))
        atoms.info["config_type"] = "bulk"
        frames.append(labelled(atoms, True))
    names = ["H2O", "CH4", "NH3", "C2H6", "C2H4", "CH3OH", "HCN", "CO2", "C6H6", "H2CO"]
    for k in range(100):
        atoms = molecule(names[k % len(names)])
        atoms.rattle(stdev=0.02, seed=int(rng.integers(1 << 30)))
        atoms.info["config_type"] = "molecule"
        frames.append(labelled(atoms, False))
    order = rng.permutation(len(frames))
    write(path, [frames[i] for i in order], format="extxyz")
    print(f"wrote {len(frames)} structures to {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/sample.xyz")
