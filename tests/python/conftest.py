"""Fixtures of the h5ml Python interop suite.

The program under test is $H5ML_BIN (default: build/h5ml of this repository). Randomized
tests print their seed (set H5ML_TEST_SEED to replay one).
"""
import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import h5ml_helpers as H  # noqa: E402


@pytest.fixture(scope="session")
def h5ml():
    path = H.h5ml_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"h5ml program not found at {path} (set H5ML_BIN)")
    return path


@pytest.fixture(scope="session")
def cli(h5ml):
    """cli(*args, input=None) -> (exit code, stdout, stderr)."""
    return H.run


@pytest.fixture(scope="session")
def sample_path():
    assert H.SAMPLE.is_file(), H.SAMPLE
    return H.SAMPLE


@pytest.fixture(scope="session")
def sample_text(sample_path):
    return sample_path.read_text()


@pytest.fixture(scope="session")
def sample_frame_texts(sample_text):
    frames = H.split_frames(sample_text)
    assert len(frames) == 300
    return frames


@pytest.fixture(scope="session")
def sample_atoms(sample_path):
    """ASE's parse of the sample (list of Atoms with SinglePointCalculator labels)."""
    import ase.io
    frames = ase.io.read(str(sample_path), index=":", format="extxyz")
    assert len(frames) == 300
    return frames


@pytest.fixture(scope="session")
def sample_h5(h5ml, sample_path, tmp_path_factory):
    """The sample converted once with default options."""
    out = tmp_path_factory.mktemp("sample") / "sample.h5"
    H.convert(sample_path, out)
    return out


@pytest.fixture(scope="session")
def sample_data(sample_h5):
    return H.load_h5(sample_h5)


@pytest.fixture
def seed(request):
    """A random seed, printed (pytest shows it with a failure); H5ML_TEST_SEED overrides."""
    s = int(os.environ.get("H5ML_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n[{request.node.name}] random seed = {s} (replay: H5ML_TEST_SEED={s})")
    return s
